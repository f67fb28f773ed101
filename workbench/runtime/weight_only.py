"""What a weight-only quantised layer holds, asked of the layer itself: its bits, groups, symmetry, the stored integer
values and scales when they can be written as they are, and its float weight.

A weight-only layer (the workbench's ``Int8PackLinear``, or its bf16 wrapper around a torchao int4 / int8 tensor)
answers ``weight_only_scheme()`` with a :class:`WeightOnlyScheme`. Writers of other formats (the vLLM engine
checkpoint) read the scheme instead of testing layer classes or precision names: a symmetric per-channel int8 layer
is written bit-exact from ``int_weight`` / ``scales``; anything else is dequantised and re-quantised in the target's
own layout.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass(frozen=True)
class WeightOnlyScheme:
    """One quantised Linear.

    Attributes:
        bits: bits per stored weight (8 or 4).
        group_size: weights per scale along the input axis; None: one scale per output channel.
        symmetric: zero point 0 (q * scale), else asymmetric (a zero point per group).
        out_features, in_features: the float weight's shape [out, in].
        bias: the float bias, or None.
        int_weight: the stored integers [out, in] (int8) when they are readable as such, else None.
        scales: the stored scales [out, groups] when ``int_weight`` is given, else None.
        dequantize: the float weight [out, in] in bf16, read through the layer's own kernel or values.
    """

    bits: int
    group_size: int | None
    symmetric: bool
    out_features: int
    in_features: int
    bias: torch.Tensor | None
    dequantize: Callable[[], torch.Tensor]
    int_weight: torch.Tensor | None = None
    scales: torch.Tensor | None = None

    @property
    def per_channel_symmetric(self) -> bool:
        """int values + one scale per output channel, zero point 0: the layout most int formats take as it is."""
        return self.symmetric and self.group_size is None and self.int_weight is not None


def weight_only_layers(model: torch.nn.Module) -> dict[str, WeightOnlyScheme]:
    """``{prefix: scheme}`` of every weight-only layer in ``model`` (modules answering ``weight_only_scheme()``)."""
    return {name: m.weight_only_scheme() for name, m in model.named_modules()
            if callable(getattr(m, "weight_only_scheme", None))}


def weight_only_bits(model: torch.nn.Module) -> set[int]:
    """The bit widths of ``model``'s weight-only layers (empty for a float model)."""
    return {s.bits for s in weight_only_layers(model).values()}


__all__ = ["WeightOnlyScheme", "weight_only_layers", "weight_only_bits"]
