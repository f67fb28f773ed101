"""Variant, the step registry and ``apply``: the spine every optimisation step plugs into.

A :class:`Variant` is one runnable form of a model (backend, device, precision, the in-memory model or an
artifact path) plus its lineage. Variants are never mutated: a step returns a new one whose id is
``hash(parent_id, step name, config)``, so the same recipe always gets the same id.

A step is a frozen dataclass config plus one function ``(Variant, Config) -> Variant`` registered with
:func:`register_step`; :func:`apply` finds the function by the config's type.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

log = logging.getLogger("workbench")

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int4", "mixed")


class Runner(Protocol):
    """What measurement needs from a variant: inputs (name -> tensor/array) in, logits out as a torch tensor."""

    def __call__(self, inputs: dict[str, Any]) -> Any: ...


def config_to_dict(config: Any) -> dict:
    """JSON-safe dict of a step config (dataclass), tagged with its type name for the registry."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"step configs are dataclasses, got {type(config).__name__}")
    data = {"type": type(config).__name__}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        data[f.name] = list(value) if isinstance(value, tuple) else value
    json.dumps(data)  # fail here, not later, if a config is not serialisable
    return data


def lineage_id(parent_id: str | None, step: str, config: dict) -> str:
    payload = json.dumps([parent_id, step, config], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Variant:
    """One runnable form of a model.

    Args:
        name: short human label ("torch-fp32", "ort-int8-static-minmax").
        task: name of the task it answers.
        backend: "torch" or "onnxruntime".
        device: "cpu" or "cuda".
        precision: "fp32", "fp16", "bf16", "int8" or "mixed".
        runner: callable inputs -> logits (see :class:`Runner`).
        model: the in-memory torch module, when there is one.
        artifact_path: the file this variant runs from (ONNX), when there is one.
        parent_id / step / config: lineage (None for a baseline).
        meta: free-form facts a step wants to pass on (export opset, diagnostics, ...).

    Example:
        >>> base = task.baseline()                         # doctest: +SKIP
        >>> int8 = apply(base, DynamicQuantConfig())       # doctest: +SKIP
    """

    name: str
    task: str
    backend: str
    device: str
    precision: str
    runner: Callable[[dict], Any] = field(repr=False, compare=False)
    model: Any = field(default=None, repr=False, compare=False)
    artifact_path: Path | None = None
    parent_id: str | None = None
    step: str | None = None
    config: dict = field(default_factory=dict, compare=False)
    lineage: tuple = ()
    meta: dict = field(default_factory=dict, compare=False)
    id: str = ""

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} unknown: use one of {BACKENDS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r} unknown: use one of {PRECISIONS}")
        if not self.id:
            base = self.parent_id or f"{self.task}:{self.backend}:{self.device}:{self.precision}"
            object.__setattr__(self, "id", lineage_id(base, self.step or "baseline", self.config))

    def __call__(self, inputs: dict) -> Any:
        return self.runner(inputs)

    def describe(self) -> dict:
        """JSON-safe summary used in result rows and manifests."""
        return {"variant_id": self.id, "variant": self.name, "backend": self.backend, "device": self.device,
                "precision": self.precision, "parent_id": self.parent_id, "step": self.step,
                "lineage": [list(x) for x in self.lineage],
                "artifact": str(self.artifact_path) if self.artifact_path else None}


_STEPS: dict[type, tuple[str, Callable]] = {}


def register_step(name: str, config_type: type):
    """Decorator: register ``fn(variant, config) -> Variant`` as the step for ``config_type``."""

    def decorator(fn):
        if config_type in _STEPS:
            raise ValueError(f"a step is already registered for {config_type.__name__}")
        _STEPS[config_type] = (name, fn)
        return fn

    return decorator


def registered_steps() -> dict[str, type]:
    return {name: cfg for cfg, (name, _fn) in _STEPS.items()}


def config_from_dict(data: dict):
    """Rebuild a step config saved by :func:`config_to_dict` (only registered types: no eval, no pickle)."""
    by_type = {cfg.__name__: cfg for cfg in _STEPS}
    kind = data.get("type")
    if kind not in by_type:
        raise ValueError(f"unknown step config type {kind!r}: import the step module first (known: {sorted(by_type)})")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k != "type"}
    return by_type[kind](**kwargs)


def apply(variant: Variant, config: Any) -> Variant:
    """Run the step registered for ``type(config)`` on ``variant`` and return the new variant.

    Adds what every step shares: lineage (parent id, step, config), the step's own wall time in
    ``meta["step_seconds"]``, and a log line.
    """
    entry = _STEPS.get(type(config))
    if entry is None:
        raise TypeError(f"no step registered for {type(config).__name__}: import its module from workbench.steps")
    name, fn = entry
    cfg = config_to_dict(config)
    start = time.perf_counter()
    out = fn(variant, config)
    seconds = time.perf_counter() - start
    lineage = variant.lineage + ((name, cfg),)
    new = dataclasses.replace(out, parent_id=variant.id, step=name, config=cfg, lineage=lineage,
                              meta={**out.meta, "step_seconds": round(seconds, 3)},
                              id=lineage_id(variant.id, name, cfg))
    log.info("applied %s to %s -> %s (%.1fs)", name, variant.id, new.id, seconds)
    return new
