"""Dynamic int8 quantisation: weights int8 ahead of time, activations quantised on the fly per call.

One technique, two runtimes, picked by the input variant's backend (not by a mode flag):
- torch variant -> ``torch.ao.quantization.quantize_dynamic`` on ``nn.Linear`` (fbgemm/x86 kernels); GPT-2's
  ``Conv1D`` layers (most of its parameters) are first turned into equivalent ``nn.Linear`` ones. torch.ao
  quantization is deprecated since torch 2.10 in favour of torchao; torchao's int8 dynamic path needs
  torch.compile to be fast on CPU and is not installed here, so the eager fbgemm kernels are the faster choice
  on this machine (``benchmarks/quantization.py`` measures the torch arm).
- onnxruntime variant -> ``onnxruntime.quantization.quantize_dynamic`` (MatMulInteger / DynamicQuantizeMatMul,
  QAttention on a fused graph), with per-channel and reduce_range (7-bit weights: avoids the u8s8 overflow of
  AVX2 ``vpmaddubsw`` on machines without VNNI).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch

from workbench.core import Variant, register_step
from workbench.runtime import require_onnx_file, torch_module
from workbench.runtime.torch_runner import TorchRunner
from workbench.steps.onnx_io import onnx_variant, require_single_graph, step_dir
from workbench.util.files import publish_dir, write_checksums

ORT_OP_TYPES = ("MatMul", "Attention", "Gather", "EmbedLayerNormalization", "Gemm", "LSTM")


@dataclass(frozen=True)
class QuantizeDynamicConfig:
    """Dynamic int8 settings.

    Args:
        per_channel: one weight scale per output channel (better accuracy, same speed on most kernels).
        reduce_range: 7-bit weights (ORT only): safer on AVX2 without VNNI, slightly less precise.
        op_types: ORT operator types to quantise (Gather = embeddings: smaller file, usually no speed-up).
        nodes_to_exclude: ORT node names kept in float (e.g. from :mod:`workbench.steps.quantize.sensitivity`).
        threads: ORT intra-op threads of the new variant (default: torch's count).
        out_dir: parent folder of the quantised ONNX file (default ``$WORKBENCH_ARTIFACTS/onnx``).

    Example:
        >>> int8 = apply(onnx_fp32, QuantizeDynamicConfig.avx2())        # doctest: +SKIP
        >>> int8_torch = apply(task.baseline(), QuantizeDynamicConfig())  # doctest: +SKIP
    """

    per_channel: bool = False
    reduce_range: bool = False
    op_types: tuple[str, ...] = ("MatMul", "Attention")
    nodes_to_exclude: tuple[str, ...] = ()
    threads: int | None = None
    out_dir: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "op_types", tuple(self.op_types))
        object.__setattr__(self, "nodes_to_exclude", tuple(self.nodes_to_exclude))
        unknown = set(self.op_types) - set(ORT_OP_TYPES)
        if unknown or not self.op_types:
            raise ValueError(f"op_types {sorted(unknown) or '()'} not quantisable dynamically: pick from {ORT_OP_TYPES}")

    @classmethod
    def default(cls) -> "QuantizeDynamicConfig":
        return cls()

    @classmethod
    def per_channel_int8(cls) -> "QuantizeDynamicConfig":
        return cls(per_channel=True)

    @classmethod
    def avx2(cls) -> "QuantizeDynamicConfig":
        """For CPUs without VNNI (AVX2 only): per-channel 7-bit weights."""
        return cls(per_channel=True, reduce_range=True)


def _is_conv1d(module: torch.nn.Module) -> bool:
    """GPT-2 style ``Conv1D`` (transformers.pytorch_utils): a Linear with its weight stored transposed [in, out]."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "nx")


def conv1d_to_linear(model: torch.nn.Module) -> int:
    """Replace every ``Conv1D`` of ``model`` (in place) by the equivalent ``nn.Linear``; returns how many.

    ``Conv1D(nf, nx)`` computes ``x @ W + b`` with ``W`` of shape [nx, nf]; ``nn.Linear(nx, nf)`` computes
    ``x @ W.T + b`` with ``W`` of shape [nf, nx], so the weight is transposed once and the outputs are the same.
    GPT-2 holds nearly all its parameters in Conv1D layers, which ``quantize_dynamic`` ({nn.Linear}) would skip.
    """
    swaps = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if _is_conv1d(child)]
    for parent, name, conv in swaps:
        linear = torch.nn.Linear(conv.nx, conv.nf, bias=conv.bias is not None,
                                 device=conv.weight.device, dtype=conv.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(conv.weight.t())
            if conv.bias is not None:
                linear.bias.copy_(conv.bias)
        setattr(parent, name, linear)
    return len(swaps)


def _torch_dynamic(variant: Variant, config: QuantizeDynamicConfig) -> Variant:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    from workbench.runtime.weights import int8_param_share

    if variant.device != "cpu":
        raise ValueError("torch dynamic int8 runs on CPU only (fbgemm/x86 kernels): use a CPU baseline")
    if config.reduce_range or config.nodes_to_exclude or set(config.op_types) != {"MatMul", "Attention"}:
        raise ValueError("reduce_range, op_types and nodes_to_exclude are ONNX Runtime options: export the model to "
                         "ONNX first (ExportOnnxConfig) or use QuantizeDynamicConfig(per_channel=...) for torch")
    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    torch.backends.quantized.engine = engine
    qconfig = per_channel_dynamic_qconfig if config.per_channel else default_dynamic_qconfig
    model = copy.deepcopy(variant.model).cpu().eval()
    conv1d = conv1d_to_linear(model)  # GPT-2's Conv1D layers become Linear, so they are quantised too
    model = quantize_dynamic(model, {torch.nn.Linear: qconfig}, dtype=torch.qint8)
    runner = TorchRunner(model, "cpu", getattr(variant.runner, "input_names", None))
    linear = sum(isinstance(m, torch.nn.Linear) or _is_conv1d(m) for m in variant.model.modules())
    quantized = sum(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.modules())
    return dataclasses.replace(variant, name="torch-int8-dynamic", precision="int8", runner=runner, model=model,
                               meta={"engine": engine, "linear_layers": linear, "quantized_layers": quantized,
                                     "conv1d_converted": conv1d, "int8_param_share": round(int8_param_share(model), 4)},
                               id="")


def _ort_dynamic(variant: Variant, config: QuantizeDynamicConfig) -> Variant:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from workbench.runtime.weights import onnx_int8_share
    from workbench.steps.quantize.diagnostics import node_counts

    dest = step_dir(variant, "quantize_dynamic", config, config.out_dir)
    with publish_dir(dest) as tmp:
        quantize_dynamic(str(variant.artifact_path), str(tmp / "model.onnx"), op_types_to_quantize=list(config.op_types),
                         per_channel=config.per_channel, reduce_range=config.reduce_range, weight_type=QuantType.QInt8,
                         nodes_to_exclude=list(config.nodes_to_exclude),
                         # fused graphs (OptimizeConfig) hold contrib ops that ONNX shape inference cannot type
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        sums = write_checksums(tmp)
    counts = node_counts(dest / "model.onnx")
    suffix = "-pc" if config.per_channel else ""
    return onnx_variant(variant, dest / "model.onnx", f"ort-int8-dynamic{suffix}", "int8", config.threads,
                        level=variant.meta.get("ort_level", "all"),
                        meta={"sha256": sums["model.onnx"], "node_counts": counts,
                              "int8_param_share": round(onnx_int8_share(dest / "model.onnx"), 4)})


@register_step("quantize_dynamic", QuantizeDynamicConfig)
def quantize_dynamic_step(variant: Variant, config: QuantizeDynamicConfig) -> Variant:
    """Dynamic int8 of a torch variant (torch.ao) or an ONNX variant (ONNX Runtime)."""
    if torch_module(variant) is not None:
        return _torch_dynamic(variant, config)
    require_onnx_file(variant, "quantize_dynamic", "apply it to a torch variant with its model, or export it first")
    require_single_graph(variant, "quantize_dynamic")
    if variant.precision == "int8":
        raise ValueError(f"{variant.name!r} is already int8: quantise its float parent instead")
    return _ort_dynamic(variant, config)


__all__ = ["QuantizeDynamicConfig", "quantize_dynamic_step", "conv1d_to_linear"]
