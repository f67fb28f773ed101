"""Distillation stacked with int8, through the quantisation steps of ``workbench.steps``.

Both routes keep the student's lineage, so distil -> (export ->) quantise rows share one family
(:func:`workbench.steps.distill.family_of`):
- "torch": distill -> quantize_dynamic (torch.ao dynamic int8 on Linear layers, GPT-2 Conv1D included; fbgemm/x86).
- "onnxruntime": distill -> export_onnx -> optimize (O2 fusions) -> quantize_dynamic (ORT, AVX2-safe 7-bit weights).
"""
from __future__ import annotations

from workbench.core import Variant, apply

ROUTES = ("torch", "onnxruntime")


def int8_of(variant: Variant, route: str = "torch") -> Variant:
    """The int8 version of a (distilled) torch variant by ``route``.

    Example:
        >>> ort_int8 = int8_of(student, "onnxruntime")      # doctest: +SKIP
    """
    from workbench.steps.quantize.dynamic import QuantizeDynamicConfig

    if route == "torch":
        return apply(variant, QuantizeDynamicConfig())
    if route == "onnxruntime":
        from workbench.steps.export_onnx import ExportOnnxConfig
        from workbench.steps.optimize import OptimizeConfig

        onnx_fp32 = apply(variant, ExportOnnxConfig())
        return apply(apply(onnx_fp32, OptimizeConfig.o2()), QuantizeDynamicConfig.avx2())
    raise ValueError(f"int8 route {route!r} unknown: use one of {ROUTES}")
