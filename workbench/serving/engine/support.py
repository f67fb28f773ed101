"""What the engine can load, checked before anything is written or any server starts.

Architectures: vLLM's own model registry, asked once through the engine venv and cached beside it (importing vLLM
takes seconds); without the venv, a short list of families vLLM has served for years, said so in the reason.
Quantisation: vLLM's CPU backend runs compressed-tensors W4A16 with an even group size and layer sizes that are
multiples of 32 (checked in ``CPUWNA16LinearKernel.can_implement``); it has no W8A16 kernel, so the workbench's
per-channel int8 weights are served as W8A8 (activations quantised per token at run time).

Kernels on this machine: vLLM's CPU build loads the kernels of this CPU's ISA, and its AVX2 build has no W4A16 GEMM
(an int4 checkpoint starts, then fails its first request). :func:`check_served_here` asks the engine venv which ops
it registers here (cached per CPU) and refuses such a checkpoint before a server starts; the export itself is not
refused, as the bundle may be served elsewhere (an AVX-512 CPU or a GPU).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from workbench.serving.engine import envs

# vLLM model classes known to load without its registry at hand (a GPU user's `vllm` has these too).
KNOWN_ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                       "GPT2LMHeadModel", "GPTNeoXForCausalLM", "OPTForCausalLM", "PhiForCausalLM",
                       "Phi3ForCausalLM", "GemmaForCausalLM", "Gemma2ForCausalLM", "FalconForCausalLM")
# Families whose vLLM loader maps float weight names only (GPT-2 transposes its Conv1D `.weight`s by name): a
# compressed-tensors checkpoint of them would load wrong, so only bf16 is exported for them.
FLOAT_ONLY_MODEL_TYPES = ("gpt2",)
LAYER_MULTIPLE = 32
PRECISIONS = ("bf16", "int8", "int4")
# The op each weight-only scheme calls in vLLM's CPU build (W8A8: oneDNN's scaled GEMM; W4A16: its own GEMM).
CPU_KERNELS = {"int8": "onednn_scaled_mm", "int4": "cpu_gemm_wna16"}
# One question to the engine venv (importing vLLM takes ~15-20 s on 2 cores, so everything is asked at once): its
# registry's architectures, its device type and the custom ops its build registers on this CPU. It also fills vLLM's
# own model-info cache for the families above: on its first start per architecture vLLM inspects the model class in
# a fresh subprocess (one more vLLM import) unless that cache has it, so the probe does it in-process instead.
# Those are private names of the pinned vllm 0.32.0: another version (a GPU user's `vllm`) lacking them still answers
# the rest, unprimed, rather than failing every export.
_ENGINE_PROBE = f"""
import json, torch
from vllm.platforms import current_platform
from vllm.model_executor.models import ModelRegistry, registry
current_platform.import_kernels()
primed = []
if hasattr(registry, "_run_in_subprocess") and hasattr(ModelRegistry, "_try_inspect_model_cls"):
    registry._run_in_subprocess = lambda fn: fn()
    primed = [a for a in {KNOWN_ARCHITECTURES!r} if ModelRegistry._try_inspect_model_cls(a) is not None]
print(json.dumps({{"architectures": sorted(ModelRegistry.get_supported_archs()), "primed": primed,
                  "device": current_platform.device_type, "ops": sorted(n.split("::", 1)[1]
                  for n in torch._C._dispatch_get_all_op_names() if n.startswith("_C::"))}}))
"""


class EngineUnsupported(ValueError):
    """The engine cannot load this variant (the message says why and what to export instead)."""


def engine_facts() -> tuple[dict, Path, bool] | None:
    """(what the engine venv said, its cache file, whether it came from the cache): ``architectures``, ``device``,
    ``ops`` (see ``_ENGINE_PROBE``); None without the venv. Kept beside the venv per CPU model and flags (the build
    loads the kernels of this CPU's ISA) until the venv's Python is newer than it. ``make serve-env`` asks once."""
    from workbench.runtime.cpu import cpu_model_and_flags
    from workbench.util.files import write_file_atomic

    try:
        python = envs.engine_python()
    except FileNotFoundError:
        return None
    model, flags = cpu_model_and_flags()
    key = hashlib.sha256(" ".join([model, *sorted(flags)]).encode()).hexdigest()[:12]
    cache = python.parent.parent / f".workbench-engine-{key}.json"
    if cache.is_file() and cache.stat().st_mtime >= python.stat().st_mtime:
        return json.loads(cache.read_text()), cache, True
    out = subprocess.run([str(python), "-c", _ENGINE_PROBE], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"could not ask vLLM ({python}) what it loads and runs here: {out.stderr.strip()[-400:]}")
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    write_file_atomic(cache, json.dumps(answer))
    return answer, cache, False


def engine_architectures() -> tuple[set[str], str]:
    """(architectures vLLM loads, where the list came from)."""
    facts = engine_facts()
    if facts is None:
        return set(KNOWN_ARCHITECTURES), "built-in list (no engine venv: `make serve-env` to ask vLLM itself)"
    answer, cache, cached = facts
    return set(answer["architectures"]), f"vLLM's registry ({cache})" if cached else "vLLM's registry"


def engine_kernels() -> tuple[str, set[str]] | None:
    """(the engine's device type, the custom ops its build registers on this machine); None without the venv."""
    facts = engine_facts()
    return None if facts is None else (facts[0]["device"], set(facts[0]["ops"]))


def checkpoint_precision(checkpoint: str | Path) -> str:
    """"bf16", "int8" or "int4": what an engine checkpoint's ``config.json`` says its weights are."""
    config = json.loads((Path(checkpoint) / "config.json").read_text())
    quant = config.get("quantization_config")
    if not quant:
        return "bf16"
    bits = {g["weights"]["num_bits"] for g in quant.get("config_groups", {}).values()}
    return {frozenset({8}): "int8", frozenset({4}): "int4"}.get(frozenset(bits), f"{sorted(bits)}-bit")


def _isa_text(isa: dict) -> str:
    """The ISA features an :func:`~workbench.runtime.cpu.isa_summary` holds, for a refusal's reason."""
    return ", ".join(k for k, v in isa.items() if v) or "no AVX2"


def fp8_kv_here() -> tuple[bool, str]:
    """(whether the engine here can keep an fp8 KV cache, why not): vLLM's CPU attention reads an fp8 cache only with
    AVX-512 or AMX (``cpu_attn._get_attn_isa``; elsewhere the engine dies at start-up); a GPU engine does."""
    import torch

    from workbench.runtime.cpu import isa_summary

    if torch.cuda.is_available():
        return True, ""
    isa = isa_summary()
    if isa["avx512"] or isa["amx_int8"] or isa["amx_bf16"]:
        return True, ""
    return False, f"vLLM's CPU attention keeps an fp8 KV cache only with AVX-512 or AMX (CPU: {_isa_text(isa)})"


def check_served_here(checkpoint: str | Path, kv_cache_dtype: str = "auto") -> None:
    """Refuse, before a server starts, a checkpoint whose weight-only kernel this machine's vLLM CPU build lacks, or
    an fp8 KV cache its attention cannot keep."""
    if kv_cache_dtype.startswith("fp8"):
        ok, why = fp8_kv_here()
        if not ok:
            raise EngineUnsupported(f"kv_cache_dtype {kv_cache_dtype}: {why}, so the engine would die at start-up: "
                                    "use kv_cache_dtype auto here, or serve on a CPU with AVX-512 or on a GPU")
    precision = checkpoint_precision(checkpoint)
    need = CPU_KERNELS.get(precision)
    kernels = engine_kernels() if need else None
    if kernels is None or kernels[0] != "cpu" or need in kernels[1]:
        return
    from workbench.runtime.cpu import isa_summary

    isa = _isa_text(isa_summary())
    here = " or ".join([p for p, op in CPU_KERNELS.items() if op in kernels[1]] + ["bf16"])
    raise EngineUnsupported(f"this machine's vLLM CPU build has no {precision} kernel ({need}; CPU: {isa}), so the "
                            f"{precision} checkpoint {checkpoint} would fail its first request: serve it on a CPU with "
                            f"AVX-512 or on a GPU, or load an {here} bundle here")


def check_engine_loadable(hf_config, precision: str, group_size: int | None, linear_shapes) -> None:
    """Refuse, with the reason and the fix, what vLLM cannot load: an architecture outside its registry, a
    precision it has no kernel for, int4 groups or layer sizes its CPU W4A16 kernel does not take.

    Args:
        hf_config: the model's transformers config.
        precision: "bf16" / "fp32" / "fp16" (exported as bf16), "int8" or "int4" (weight-only).
        group_size: int4 group size.
        linear_shapes: (out_features, in_features) of each quantised Linear.
    """
    archs = list(getattr(hf_config, "architectures", None) or [])
    known, source = engine_architectures()
    if not archs or not any(a in known for a in archs):
        raise EngineUnsupported(f"vLLM cannot load architecture {archs or '(none in config.json)'} ({source} lists "
                                f"{len(known)} others, e.g. {', '.join(sorted(known)[:4])}): serve this model with "
                                "`workbench export` (Triton) instead")
    if precision in ("fp32", "fp16"):
        return   # exported as bf16
    if precision not in PRECISIONS:
        raise EngineUnsupported(f"precision {precision!r} has no vLLM CPU kernel in this export: export the float "
                                "baseline (bf16) or a WeightOnlyConfig int8 / int4 variant")
    if precision == "bf16":
        return
    model_type = getattr(hf_config, "model_type", "")
    if model_type in FLOAT_ONLY_MODEL_TYPES:
        raise EngineUnsupported(f"vLLM's {model_type} loader maps float weights by name (it transposes Conv1D "
                                f"weights), so a compressed-tensors {precision} checkpoint of it would not load: "
                                "export its float baseline (bf16)")
    if precision == "int8":
        return
    if group_size is None or group_size % 2:
        raise EngineUnsupported(f"int4 group size {group_size}: vLLM's CPU W4A16 kernel needs an even group size")
    bad = [s for s in linear_shapes if s[0] % LAYER_MULTIPLE or s[1] % LAYER_MULTIPLE]
    if bad:
        raise EngineUnsupported(f"{len(bad)} quantised layers have sizes that are not multiples of {LAYER_MULTIPLE} "
                                f"(first {bad[0]}): vLLM's CPU kernels need them for int4; export int8 or the float baseline (bf16)")


if __name__ == "__main__":   # `make serve-env` asks once, so a first export or start does not wait on it
    found = engine_facts()
    if found is None:
        print("no engine venv: `make serve-env` first")
    else:
        answer, cache, _ = found
        print(f"vLLM on {answer['device']}: {len(answer['architectures'])} architectures, {len(answer['ops'])} custom "
              f"ops; model info cached for {', '.join(answer['primed']) or 'none'} ({cache})")


__all__ = ["EngineUnsupported", "check_engine_loadable", "check_served_here", "checkpoint_precision", "fp8_kv_here",
           "engine_architectures", "engine_facts", "engine_kernels", "KNOWN_ARCHITECTURES", "CPU_KERNELS"]
