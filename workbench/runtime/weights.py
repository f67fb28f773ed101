"""How many weights a model holds and what share of them is int8: torch modules (packed int8 weights of
``torch.ao`` quantised layers unpacked and counted) and ONNX files (initializers by element type).

Steps record these in a variant's meta and measurement reports them, so they sit below both.
"""
from __future__ import annotations

from pathlib import Path

import torch


def packed_modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """``{prefix: module}`` of the packed-parameter holders (``LinearPackedParams``) inside ``model``."""
    # The quantised Linear has _weight_bias() too, delegating to its _packed_params child: count the holder only.
    return {name: m for name, m in model.named_modules() if callable(getattr(m, "_weight_bias", None))
            and not isinstance(getattr(m, "_packed_params", None), torch.nn.Module)}


def weight_numels(model: torch.nn.Module) -> tuple[int, int]:
    """(all parameters, int8 weights): float parameters plus the unpacked weights and biases of quantised layers."""
    seen, total = set(), 0
    for p in model.parameters():  # parameters() already skips tied duplicates
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    int8 = 0
    for module in packed_modules(model).values():
        weight, bias = module._weight_bias()
        total += weight.numel() + (bias.numel() if bias is not None else 0)
        if weight.is_quantized and weight.dtype in (torch.qint8, torch.quint8):
            int8 += weight.numel()
    return total, int8


def parameter_count(model: torch.nn.Module) -> int:
    """Parameters of ``model``, counting the packed weights and biases of quantised layers (tied ones once)."""
    return weight_numels(model)[0]


def int8_param_share(model: torch.nn.Module) -> float:
    """Share of ``model``'s parameters held as int8 weights (0.0 for a float model)."""
    total, int8 = weight_numels(model)
    return int8 / total if total else 0.0


def onnx_int8_share(path: str | Path) -> float:
    """Share of an ONNX model's weight elements (float and 8-bit initializers) stored as int8/uint8."""
    import onnx

    from workbench.runtime.onnx_files import initializer_numels

    numels = initializer_numels(path)
    eight = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8}
    weights = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE,
               *eight}
    total = sum(n for dtype, n in numels if dtype in weights)
    return sum(n for dtype, n in numels if dtype in eight) / total if total else 0.0


__all__ = ["packed_modules", "weight_numels", "parameter_count", "int8_param_share", "onnx_int8_share"]
