"""Optimisation steps, one technique per module; importing a module registers its step with ``workbench.core``.

``import workbench.steps`` registers the ONNX steps (their heavy imports stay inside the functions);
:func:`discover` imports every other step module too (e.g. distillation) and reports the ones that fail.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil

from workbench.steps.export_onnx import ExportOnnxConfig
from workbench.steps.optimize import OptimizeConfig
from workbench.steps.quantize.dynamic import QuantizeDynamicConfig
from workbench.steps.quantize.calibration import calibrate
from workbench.steps.quantize.static import QuantizeStaticConfig

_HELPERS = {"onnx_io", "export_validation"}


def discover() -> dict[str, str]:
    """Import every step module in this package; return ``{module: error}`` for those that could not load."""
    errors = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _HELPERS or info.name.startswith("_"):
            continue
        try:
            importlib.import_module(f"{__name__}.{info.name}")
        except Exception as exc:  # one broken step must not hide the others
            logging.getLogger("workbench").warning("step module %s failed to import: %s", info.name, exc)
            errors[info.name] = f"{type(exc).__name__}: {exc}"
    return errors


__all__ = ["ExportOnnxConfig", "OptimizeConfig", "QuantizeDynamicConfig", "QuantizeStaticConfig", "calibrate", "discover"]
