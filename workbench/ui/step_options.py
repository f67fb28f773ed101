"""The panel's tick boxes: which optimisation steps (and named presets) can be offered, found from the registry.

Every module under ``workbench.steps`` is imported so its steps register; one that fails to import (a missing
optional dependency) still becomes a tick box, marked unavailable with the reason, so the panel can say why.

Example:
    >>> [o.label for o in discover_step_options()]        # doctest: +SKIP
    ['export_onnx', 'quantize_dynamic', 'quantize_static: minmax', ...]
"""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any

from workbench.core import registered_steps


@dataclass(frozen=True)
class StepOption:
    """One tick box: a label and the step configs applied in order to the baseline; ``reason`` says why it cannot run."""

    label: str
    configs: tuple = ()
    reason: str = ""


def discover_step_options() -> list[StepOption]:
    """Every registered step with its default config and named presets; step modules that fail to import
    (a missing dependency) come back as options that say why."""
    broken = []
    try:
        package = importlib.import_module("workbench.steps")
        modules = [info.name for info in pkgutil.iter_modules(package.__path__)]
    except ImportError:
        modules = []
    for name in modules:
        try:
            importlib.import_module(f"workbench.steps.{name}")
        except Exception as err:  # noqa: BLE001 - any import failure makes the step unavailable, not the panel
            broken.append(StepOption(name, (), f"cannot import workbench.steps.{name}: {type(err).__name__}: {err}"))
    options = [opt for name, cfg_type in registered_steps().items() for opt in _presets(name, cfg_type)]
    return options + broken


def _presets(name: str, cfg_type: type) -> list[StepOption]:
    """The default config (when every field has a default) and each no-argument classmethod preset."""
    found: list[tuple[str, Any]] = []
    try:
        found.append((name, cfg_type()))
    except Exception:  # noqa: BLE001 - a config without defaults is offered through its presets only
        pass
    for attr, value in vars(cfg_type).items():
        if attr.startswith("_") or not isinstance(value, classmethod) or attr in ("from_dict", "from_json"):
            continue
        try:
            config = getattr(cfg_type, attr)()
        except Exception:  # noqa: BLE001 - presets that need arguments cannot be a plain tick box
            continue
        if isinstance(config, cfg_type) and all(config != c for _l, c in found):
            found.append((f"{name}: {attr}", config))
    return [StepOption(label, (config,)) for label, config in found]


def isa_step_options(calibration: str | None = None) -> list[StepOption]:
    """This CPU's arms (:func:`workbench.arms.cpu.cpu_arms`) as tick boxes ``cpu: <arm>``, each with the step
    configs that build it from the baseline; an arm that does not apply here is a box that says why (bf16 without
    AMX / AVX512-BF16, a missing library, static int8 without ``calibration``)."""
    from workbench.arms.cpu import cpu_arms

    return [StepOption(f"cpu: {arm.name}", arm.steps, "" if arm.applies else f"not available here: {arm.reason}")
            for arm in cpu_arms(calibration=calibration) if arm.steps or not arm.applies]


def as_option(option) -> StepOption:
    """A StepOption from a StepOption or a ``(label, config or tuple of configs)`` pair, checking the configs."""
    if isinstance(option, StepOption):
        return option
    label, configs = option
    configs = tuple(configs) if isinstance(configs, (tuple, list)) else (configs,)
    if not all(dataclasses.is_dataclass(c) for c in configs):
        raise TypeError(f"option {label!r}: step configs are dataclass instances, got {configs!r}")
    return StepOption(label, configs)


__all__ = ["StepOption", "discover_step_options", "isa_step_options", "as_option"]
