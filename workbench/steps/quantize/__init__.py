"""Quantisation steps: dynamic int8 (``dynamic``), static int8 (``calibrate`` -> ranges, then ``static``), and the
tools that explain the result: ``diagnostics`` (node counts, ISA, op-time profile, flags) and ``sensitivity``
(per-layer damage of static int8)."""
from workbench.steps.quantize.dynamic import QuantizeDynamicConfig
from workbench.steps.quantize.calibration import calibrate
from workbench.steps.quantize.static import QuantizeStaticConfig

__all__ = ["QuantizeDynamicConfig", "QuantizeStaticConfig", "calibrate"]
