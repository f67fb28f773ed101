"""Fallback int8 for stacking with distillation: torch dynamic quantisation of Linear layers (CPU).

Used only when the quantisation step in ``workbench.steps`` is not available; the variant's lineage
records it as a step so distil -> quantise stays one family in the ResultsTable.
"""
from __future__ import annotations

import copy
import dataclasses
import warnings

import torch

from workbench.core import Variant, lineage_id
from workbench.runners import TorchRunner


def torch_dynamic_int8(variant: Variant) -> Variant:
    """int8 weights, int8 activations quantised per call (``torch.ao.quantization.quantize_dynamic``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the torch.ao deprecation notice: the API still works in this torch
        model = torch.ao.quantization.quantize_dynamic(copy.deepcopy(variant.model).eval(), {torch.nn.Linear},
                                                       dtype=torch.qint8)
    cfg = {"type": "torch_quantize_dynamic", "dtype": "qint8", "modules": ["Linear"]}
    return dataclasses.replace(variant, name=variant.name + "-int8", precision="int8", model=model,
                               runner=TorchRunner(model, "cpu", getattr(variant.runner, "input_names", None)),
                               parent_id=variant.id, step="torch_quantize_dynamic", config=cfg,
                               lineage=variant.lineage + (("torch_quantize_dynamic", cfg),),
                               meta={"parent": variant.id}, id=lineage_id(variant.id, "torch_quantize_dynamic", cfg))


def int8_of(variant: Variant) -> tuple[Variant, str]:
    """The student's int8 version: the dynamic-quantisation step of ``workbench.steps`` when it is installed,
    else :func:`torch_dynamic_int8`. Returns the variant and which method made it."""
    try:
        from workbench.steps.quantize_dynamic import DynamicQuantConfig
    except ImportError:
        return torch_dynamic_int8(variant), "torch.ao.quantization.quantize_dynamic (Linear, qint8)"
    from workbench.core import apply

    return apply(variant, DynamicQuantConfig()), "workbench.steps.quantize_dynamic"
