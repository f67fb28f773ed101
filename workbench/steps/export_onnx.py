"""ONNX export step: a torch variant -> an ONNX Runtime variant, validated against its parent or not made at all.

Hugging Face models go through optimum-onnx (``onnx_export_from_model``: dynamic batch/sequence axes, decoder LMs
with a KV cache so generation runs in ONNX Runtime; encoder-decoders as encoder + decoder-with-past files through
:mod:`workbench.tasks.seq2seq_onnx`); any other ``nn.Module`` through ``torch.onnx.export``
(TorchScript exporter: the dynamo one needs onnxscript, not installed here) with example inputs taken from
``variant.meta["example_inputs"]``. The exported model is then compared with the parent on a grid of batch sizes x
sequence lengths (max abs diff + top-1 / next-token agreement); past tolerance the step raises, never only warns.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from workbench.core import Variant, register_step
from workbench.runtime import require_torch_module
from workbench.steps.export_validation import OnnxValidationError, hf_grid, module_grid, validate_export
from workbench.steps.onnx_io import onnx_variant, step_dir
from workbench.tasks.hf_loading import is_hf_model, model_kind
from workbench.util.files import publish_dir, write_checksums

MIN_OPSET, MAX_OPSET = 14, 21  # 14: first opset with the ops transformer exports need; 21: what ORT 1.2x+ runs fully


class OnnxExportError(RuntimeError):
    """The exporter could not turn the model into ONNX (unsupported operator or architecture)."""


@dataclass(frozen=True)
class ExportOnnxConfig:
    """How to export and how strictly to validate.

    Args:
        opset: ONNX opset; None lets optimum pick the architecture's default (17 for torch.onnx modules).
        with_past: decoder LMs get ``past_key_values`` inputs / ``present`` outputs (needed to generate in ORT).
        batch_sizes / seq_lens: the validation grid (at least 3 of each); seq lens past the model's limit are dropped.
        atol: largest allowed |onnx - parent| over real (unpadded) positions.
        min_agreement: smallest allowed fraction of positions whose argmax (class / next token) matches the parent.
        threads: ORT intra-op threads of the new variant (default: torch's count).
        out_dir: parent folder of the export (default ``$WORKBENCH_ARTIFACTS/onnx``).

    Example:
        >>> onnx_fp32 = apply(task.baseline(), ExportOnnxConfig())               # doctest: +SKIP
        >>> onnx_fp32.artifact_path, onnx_fp32.meta["export"]["max_abs_diff"]
    """

    opset: int | None = None
    with_past: bool = True
    batch_sizes: tuple[int, ...] = (1, 2, 4)
    seq_lens: tuple[int, ...] = (8, 32, 128)
    atol: float = 1e-3
    min_agreement: float = 0.99
    threads: int | None = None
    out_dir: str | None = None

    def __post_init__(self):
        if self.opset is not None and not MIN_OPSET <= self.opset <= MAX_OPSET:
            raise ValueError(f"opset {self.opset} unsupported: use {MIN_OPSET}..{MAX_OPSET} or None for the default")
        for field_name in ("batch_sizes", "seq_lens"):
            values = tuple(getattr(self, field_name))
            if len(values) < 3 or any(int(v) < 1 for v in values):
                raise ValueError(f"{field_name}={values}: give at least 3 positive sizes so validation covers the axes")
            object.__setattr__(self, field_name, tuple(int(v) for v in values))
        if self.atol <= 0 or not 0 < self.min_agreement <= 1:
            raise ValueError(f"atol must be > 0 and min_agreement in (0, 1], got {self.atol}, {self.min_agreement}")

    @classmethod
    def default(cls) -> "ExportOnnxConfig":
        return cls()

    @classmethod
    def strict(cls) -> "ExportOnnxConfig":
        """Bit-for-bit-ish: every argmax must match and logits within 1e-5."""
        return cls(atol=1e-5, min_agreement=1.0)

    @classmethod
    def no_cache(cls) -> "ExportOnnxConfig":
        """Decoder LMs without KV cache inputs (a single full-sequence forward, e.g. for scoring)."""
        return cls(with_past=False)


def _export_hf(model, folder, config: ExportOnnxConfig, kind: str) -> None:
    from optimum.exporters.onnx import onnx_export_from_model

    task = {"classification": "text-classification", "hf": None,
            "causal-lm": "text-generation-with-past" if config.with_past else "text-generation"}[kind]
    # Validation is ours (grid + agreement + KV path); optimum's own check would run the model twice more.
    had_own_forward = "forward" in vars(model)
    try:
        onnx_export_from_model(model, folder, opset=config.opset, task=task, do_validation=False)
    finally:
        # optimum's patcher "restores" forward by assigning it on the instance; the model behaves the same, but
        # every torch.compile guard on it fails, so a compiled decode loop built on this model before the export
        # recompiled inside its timed runs (0.6x HF instead of ~1.3x in benchmarks/llm_decode.py). Put it back as found.
        if not had_own_forward:
            vars(model).pop("forward", None)


class _LogitsOnly(torch.nn.Module):
    """Positional tensors in (torch.onnx's calling convention), the module's logits out."""

    def __init__(self, module: torch.nn.Module, names: list[str]):
        super().__init__()
        self.module, self.names = module, names

    def forward(self, *tensors):
        out = self.module(**dict(zip(self.names, tensors)))
        return out.logits if hasattr(out, "logits") else out


def _export_module(model, example_inputs: dict, folder, config: ExportOnnxConfig) -> None:
    names = list(example_inputs)
    axes = {n: {0: "batch_size", 1: "sequence_length"} if example_inputs[n].dim() > 1 else {0: "batch_size"}
            for n in names}
    torch.onnx.export(_LogitsOnly(model, names).eval(), tuple(example_inputs.values()), str(folder / "model.onnx"),
                      input_names=names, output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch_size"}},
                      opset_version=config.opset or 17, dynamo=False)


def _checked_model(variant: Variant) -> torch.nn.Module:
    model = require_torch_module(variant, "export_onnx",
                                 "export the torch baseline, then quantise/optimise the ONNX variant")
    if variant.precision != "fp32":
        raise ValueError(f"export_onnx exports fp32 models, {variant.name!r} is {variant.precision}: export the fp32 "
                         "baseline (then apply the ONNX quantisation / optimisation steps)")
    if any(not p.is_floating_point() for p in model.parameters()) or "quantized" in type(model).__module__:
        raise ValueError(f"{variant.name!r} holds a torch-quantised model, which ONNX export does not support: export "
                         "the fp32 parent and use QuantizeDynamicOrtConfig / QuantizeStaticConfig instead")
    return model


def _export_encoder_decoder(variant: Variant, model, config: ExportOnnxConfig) -> Variant:
    """T5 / BART: optimum's encoder + decoder-with-past files (one model.onnx cannot hold them), run by the
    text2text runner and checked token for token against the torch model's greedy output on grid inputs."""
    from workbench.tasks.seq2seq_onnx import export_seq2seq

    grid = hf_grid(model.config, config.batch_sizes[:2], config.seq_lens[:2])
    return export_seq2seq(variant, grid, max_new_tokens=8, out_dir=config.out_dir, threads=config.threads,
                          opset=config.opset)


@register_step("export_onnx", ExportOnnxConfig)
def export_onnx(variant: Variant, config: ExportOnnxConfig) -> Variant:
    """Export ``variant``'s torch model to ONNX, validate it on the grid, return the ONNX Runtime variant."""
    from workbench.runtime.ort import OrtRunner

    model = _checked_model(variant)
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return _export_encoder_decoder(variant, model, config)
    kind = model_kind(model)
    hf = is_hf_model(model)
    if not hf and "example_inputs" not in variant.meta:
        raise ValueError("a plain nn.Module needs example inputs to export: build the variant with "
                         "meta={'example_inputs': {name: tensor}} (batch first, in forward()'s argument order)")
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()  # export traces on CPU; the parent's (GPU) model stays as it is
    dest = step_dir(variant, "export_onnx", config, config.out_dir)
    with publish_dir(dest) as tmp:
        try:
            if hf:
                _export_hf(model, tmp, config, kind)
            else:
                _export_module(model, variant.meta["example_inputs"], tmp, config)
        except Exception as exc:
            raise OnnxExportError(f"ONNX export of {type(model).__name__} failed: {type(exc).__name__}: {exc}. "
                                  "An operator or architecture the exporter cannot handle: try another opset "
                                  f"(ExportOnnxConfig(opset=...), now {config.opset}) or simplify the module") from exc
        runner = OrtRunner(tmp / "model.onnx", threads=config.threads)
        grid = (hf_grid(model.config, config.batch_sizes, config.seq_lens) if hf
                else module_grid(variant.meta["example_inputs"], config.batch_sizes, config.seq_lens))
        report = validate_export(variant, runner, grid, kind, config.atol, config.min_agreement,
                                 check_past=bool(runner.past_names))
        sums = write_checksums(tmp)
    import onnx

    opset = next(o.version for o in onnx.load(str(dest / "model.onnx"), load_external_data=False).opset_import
                 if o.domain in ("", "ai.onnx"))
    from workbench.runtime.onnx_files import external_data_locations

    # Weights past protobuf's 2 GB sit in files named by the exporter (model.onnx_data, one per tensor, ...): the
    # graph's own location fields name them, so size, bundle, verify and serve-check carry them all.
    facts = {"opset": opset, "kv_cache": bool(runner.past_names), "inputs": list(runner.inputs),
             "outputs": runner.outputs, "sha256": sums["model.onnx"],
             "external_data": external_data_locations(dest / "model.onnx"), **report}
    return onnx_variant(variant, dest / "model.onnx", "ort-fp32", "fp32", config.threads,
                        meta={"model_kind": kind, "export": facts})


__all__ = ["ExportOnnxConfig", "export_onnx", "OnnxExportError", "OnnxValidationError"]
