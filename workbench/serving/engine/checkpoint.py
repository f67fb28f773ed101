"""A Hugging Face directory vLLM loads, from a torch causal-LM variant: bf16 weights, or the workbench's weight-only
int8 / int4 result written as compressed-tensors (the ``quantization_config`` vLLM's ``compressed_tensors`` method
reads: one config group over every quantised ``Linear``, weights symmetric int).

int4 tensor layout per quantised Linear ``P`` (what vLLM's ``CompressedTensorsWNA16`` scheme loads):
``P.weight_packed`` int32 [out, in * bits / 32] (values + 2^(bits-1), packed low bits first along the input axis),
``P.weight_scale`` bf16 [out, in / group],
``P.weight_shape`` int64 [2] = (out, in).

int8 (``format: int-quantized``): ``P.weight`` int8 [out, in] and ``P.weight_scale`` fp32 [out, 1]. Each layer is
asked for its scheme (:mod:`workbench.runtime.weight_only`), never for its class: the workbench's CPU int8 layer is
symmetric per output channel, so its int8 values and scales are written as they are (bit-exact). vLLM's CPU backend has no W8A16 kernel (its CPU WNA16 kernel takes 4-bit types only), so the config
asks for W8A8: activations quantised per token at run time, which the workbench's weight-only arm does not do (the
card says so; served perplexity is measured on the engine). int4: the workbench's torchao int4 tensor is group-wise *asymmetric*, and vLLM's CPU
W4A16 kernel takes symmetric groups, so its weights are dequantised and re-quantised symmetric in the same groups (the
card says so; served perplexity is measured on the exported checkpoint, not assumed). A quantised ``lm_head`` is
written dequantised in bf16 and listed in ``ignore`` (vLLM's LM head takes float weights here).

Tensors are converted one at a time into the output dict: a bf16 model is never copied whole to fp32.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from workbench.util.files import write_file_atomic

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "tokenizer.model", "vocab.txt", "generation_config.json", "added_tokens.json")


def pack_int32(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Signed ``bits``-bit ints [out, in] -> int32 [out, in * bits / 32]: offset to unsigned, ``32 / bits`` values per
    word, the first value in the lowest bits (compressed-tensors' ``pack_to_int32`` along the input axis)."""
    per = 32 // bits
    if q.shape[1] % per:
        raise ValueError(f"input size {q.shape[1]} is not a multiple of {per} ({bits}-bit values per int32 word)")
    unsigned = (q.to(torch.int32) + (1 << (bits - 1))).view(q.shape[0], -1, per)
    shifts = torch.arange(per, dtype=torch.int32) * bits
    # int32 shifts and sums wrap like the C int32 words vLLM reads (the top 8-bit value sets the sign bit)
    return (unsigned << shifts).sum(dim=2, dtype=torch.int32)


def unpack_int32(packed: torch.Tensor, bits: int, in_features: int) -> torch.Tensor:
    """Inverse of :func:`pack_int32` (for the round-trip check)."""
    per = 32 // bits
    shifts = torch.arange(per, dtype=torch.int32) * bits
    vals = (packed.unsqueeze(-1) >> shifts) & ((1 << bits) - 1)
    return (vals.reshape(packed.shape[0], -1)[:, :in_features] - (1 << (bits - 1))).to(torch.int8)


def quantize_symmetric(w: torch.Tensor, bits: int, group_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int quantisation of a float [out, in] weight: per output channel (``group_size`` None) or in groups
    along the input axis. Returns (q int8 [out, in], scale float32 [out, groups])."""
    qmax = (1 << (bits - 1)) - 1
    out, inp = w.shape
    group = group_size or inp
    wg = w.float().view(out, inp // group, group)
    scale = (wg.abs().amax(dim=2) / qmax).clamp(min=1e-8)                            # [out, groups]
    q = (wg / scale[..., None]).round().clamp(-qmax - 1, qmax).to(torch.int8).view(out, inp)
    return q, scale


def linear_shapes(model: torch.nn.Module) -> list[tuple[int, int]]:
    """(out, in) of each quantised layer except the LM head (which is written in bf16)."""
    from workbench.runtime.weight_only import weight_only_layers

    return [(s.out_features, s.in_features) for prefix, s in weight_only_layers(model).items()
            if prefix.split(".")[-1] != "lm_head"]


def engine_tensors(model: torch.nn.Module, precision: str, group_size: int | None) -> tuple[dict, dict | None]:
    """(tensors to save, quantization_config or None) of ``model`` for vLLM; see the module doc for the layout.

    Each quantised layer is asked for its scheme (:mod:`workbench.runtime.weight_only`): a symmetric per-channel int8
    layer is written bit-exact; any other is dequantised and re-quantised symmetric in ``group_size`` groups."""
    from workbench.runtime.weight_only import weight_only_layers

    quantised = weight_only_layers(model) if precision != "bf16" else {}
    bits_found = {s.bits for s in quantised.values()}
    if precision != "bf16" and not quantised:
        raise ValueError(f"the variant says {precision} but has no workbench weight-only layer: export the "
                         "WeightOnlyConfig variant itself")
    if len(bits_found) > 1:
        raise ValueError(f"mixed weight-only widths {sorted(bits_found)}: vLLM's compressed-tensors config here takes "
                         "one: quantise every layer with one WeightOnlyConfig")
    bits = bits_found.pop() if bits_found else None
    tensors: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}
    tied = bool(getattr(getattr(model, "config", None), "tie_word_embeddings", False))
    skip = tuple(p + "." for p in quantised)
    with torch.no_grad():
        for key, value in model.state_dict(keep_vars=False).items():
            if key.startswith(skip):
                continue
            ptr = value.untyped_storage().data_ptr() if value.numel() else None
            if ptr is not None and ptr in seen and tied:
                continue   # the tied LM head: vLLM (and transformers) tie it back from the embedding
            if ptr is not None:
                seen[ptr] = key
            tensors[key] = (value.to(torch.bfloat16) if value.is_floating_point() else value).contiguous()
        ignore = []
        for prefix, scheme in quantised.items():
            if scheme.bias is not None:
                tensors[f"{prefix}.bias"] = scheme.bias.detach().to(torch.bfloat16).contiguous()
            if prefix.split(".")[-1] == "lm_head":
                ignore.append(prefix)
                if not tied:
                    tensors[f"{prefix}.weight"] = scheme.dequantize().to(torch.bfloat16).contiguous()
                continue
            if bits == 8 and scheme.per_channel_symmetric:   # written bit-exact, unpacked (int-quantized)
                tensors[f"{prefix}.weight"] = scheme.int_weight.contiguous()
                tensors[f"{prefix}.weight_scale"] = scheme.scales.float().contiguous()
            else:
                w = scheme.dequantize()
                q, scale = quantize_symmetric(w, bits, group_size if bits == 4 else None)
                del w
                if bits == 8:
                    tensors[f"{prefix}.weight"] = q
                    tensors[f"{prefix}.weight_scale"] = scale.contiguous()
                else:
                    tensors[f"{prefix}.weight_packed"] = pack_int32(q, bits)
                    tensors[f"{prefix}.weight_scale"] = scale.to(torch.bfloat16).contiguous()
                    tensors[f"{prefix}.weight_shape"] = torch.tensor(list(q.shape), dtype=torch.int64)
    if not quantised:
        return tensors, None
    weights = {"num_bits": bits, "type": "int", "symmetric": True, "dynamic": False,
               "strategy": "group" if bits == 4 else "channel", "group_size": group_size if bits == 4 else None,
               "actorder": None, "observer": "minmax", "observer_kwargs": {}}
    # vLLM's CPU backend has no W8A16 kernel (CPUWNA16 takes uint4 only): int8 weights are served as W8A8 with
    # activations quantised per token at run time (int-quantized); int4 as W4A16 (pack-quantized).
    acts = ({"num_bits": 8, "type": "int", "symmetric": True, "dynamic": True, "strategy": "token",
             "group_size": None, "actorder": None, "observer": None, "observer_kwargs": {}} if bits == 8 else None)
    fmt = "int-quantized" if bits == 8 else "pack-quantized"
    config = {"quant_method": "compressed-tensors", "format": fmt, "quantization_status": "compressed",
              "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights, "input_activations": acts,
                                            "output_activations": None, "format": fmt}},
              "ignore": sorted(set(ignore) | {"lm_head"}), "kv_cache_scheme": None, "sparsity_config": {}}
    return tensors, config


def write_engine_checkpoint(model: torch.nn.Module, dest: Path, precision: str, group_size: int | None = None,
                            tokenizer_dir: Path | None = None) -> dict:
    """Write ``model`` into ``dest`` (an empty folder inside a ``publish_dir``) as a HF directory vLLM loads:
    ``config.json`` (dtype bfloat16, ``quantization_config`` for int8/int4), ``model.safetensors`` and the tokenizer
    files found in ``tokenizer_dir``. Returns facts for the manifest (precision, bytes, quantised layers)."""
    from safetensors.torch import save_file

    config = getattr(model, "config", None)
    if config is None:
        raise ValueError("the variant's torch module has no transformers config: vLLM loads Hugging Face causal LMs "
                         "(export a model loaded from a HF directory)")
    tensors, quant = engine_tensors(model, precision, group_size)
    dest.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(dest / "model.safetensors"), metadata={"format": "pt"})
    n_bytes = sum(t.numel() * t.element_size() for t in tensors.values())
    del tensors
    cfg = config.to_dict()
    cfg.pop("quantization_config", None)
    cfg.update(torch_dtype="bfloat16", dtype="bfloat16")
    if not cfg.get("architectures"):
        cfg["architectures"] = [type(model).__name__]
    if quant:
        cfg["quantization_config"] = quant
    write_file_atomic(dest / "config.json", json.dumps(cfg, indent=2, default=str) + "\n")
    copied = []
    for name in TOKENIZER_FILES:
        src = Path(tokenizer_dir) / name if tokenizer_dir else None
        if src is not None and src.is_file():
            shutil.copyfile(src, dest / name)
            copied.append(name)
    if "tokenizer.json" not in copied and "tokenizer.model" not in copied and "vocab.json" not in copied:
        raise ValueError(f"no tokenizer files in {tokenizer_dir}: vLLM and AIPerf need the model's tokenizer "
                         "(tokenizer.json or vocab.json + merges.txt) beside the weights")
    return {"precision": precision, "weight_bytes": n_bytes, "quantization": quant and quant["config_groups"],
            "quantized_layers": len(linear_shapes(model)) if quant else 0, "tokenizer_files": copied}


__all__ = ["write_engine_checkpoint", "engine_tensors", "pack_int32", "unpack_int32", "quantize_symmetric",
           "linear_shapes", "TOKENIZER_FILES"]
