"""A study spec: which model, which variants (step recipes), which points, which SLO, on which hardware.

Written as YAML or TOML; every field is checked when the spec loads, before anything runs, and an unknown field or
step is an error that names it. Example (YAML)::

    study: clf-hardware
    task: text-classification          # or causal-lm; model/data for a local HF directory + eval file
    variants:
      baseline: []
      onnx-int8:
        - export_onnx: {}
        - quantize_dynamic: {per_channel: true}
    points: {batch_sizes: [1, 8], seq_len: 64}
    measure: {eval_limit: 128, time_budget_s: 10, threads: 2}
    slo: {ms: 50, percentile: p99}
    local_instance: c7i.large          # what this machine is priced as when the study runs without Ray
    targets:                           # Ray only: where each point runs (node custom resources / labels)
      - {name: cpu-small, instance: c7i.large, resources: {"instance:c7i.large": 1}}
      - {name: gpu-l4, instance: g6.xlarge, device: cuda, gpus: 1, resources: {"gpu:l4": 1}}
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

TOP_LEVEL = ("study", "task", "model", "data", "variants", "points", "measure", "slo", "utilisation",
             "local_instance", "targets", "shared_path")
POINT_FIELDS = ("batch_sizes", "seq_len")
MEASURE_FIELDS = ("eval_limit", "time_budget_s", "threads")
SLO_FIELDS = ("ms", "percentile")
TARGET_FIELDS = ("name", "instance", "resources", "device", "gpus")


class SpecError(ValueError):
    """The spec cannot run as written; the message names the field and what to write instead."""


@dataclass(frozen=True)
class Target:
    """One kind of hardware: the price-table instance it is, and the Ray resources that find its nodes."""

    name: str
    instance: str
    resources: tuple[tuple[str, float], ...] = ()
    device: str = "cpu"
    gpus: float = 0.0

    def __post_init__(self):
        if self.device not in ("cpu", "cuda"):
            raise SpecError(f"target {self.name!r}: device {self.device!r} unknown: use cpu or cuda")
        if self.device == "cuda" and self.gpus <= 0:
            raise SpecError(f"target {self.name!r}: device cuda needs gpus >= 1 (a share of a GPU per measurement)")


@dataclass(frozen=True)
class StudySpec:
    """A parsed, validated study. ``variants`` maps a name to its recipe: ``((step name, config dict), ...)``."""

    study: str
    task: str
    variants: tuple[tuple[str, tuple], ...]
    batch_sizes: tuple[int, ...] = (1, 8)
    seq_len: int | None = None
    model: str | None = None
    data: str | None = None
    eval_limit: int | None = None
    time_budget_s: float = 10.0
    threads: int | None = None
    slo_ms: float | None = None
    percentile: str = "p99"
    utilisation: float = 1.0
    local_instance: str = "c7i.large"
    targets: tuple[Target, ...] = ()
    shared_path: str | None = None
    source: dict = field(default_factory=dict, compare=False, repr=False)

    def recipe(self, name: str) -> tuple:
        return dict(self.variants)[name]


def load_spec(path: str | Path) -> StudySpec:
    """Read and validate a YAML (.yml/.yaml) or TOML (.toml) study spec."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study spec {path} does not exist: write one (see workbench/cluster/spec.py)")
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        data = tomllib.loads(text)
    elif path.suffix in (".yml", ".yaml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        raise SpecError(f"study spec {path}: use a .yaml, .yml or .toml file")
    return parse_spec(data, default_name=path.stem)


def parse_spec(data: dict, default_name: str = "study") -> StudySpec:
    """A :class:`StudySpec` from plain data (what YAML/TOML gives), every field checked."""
    if not isinstance(data, dict):
        raise SpecError("a study spec is a mapping of fields (study, task, variants, points, ...)")
    _no_unknown(data, TOP_LEVEL, "the spec")
    for required in ("task", "variants"):
        if required not in data:
            raise SpecError(f"the spec has no {required!r}: add it (see workbench/cluster/spec.py)")
    points, measure, slo = (_section(data, k, allowed) for k, allowed in
                            (("points", POINT_FIELDS), ("measure", MEASURE_FIELDS), ("slo", SLO_FIELDS)))
    batch_sizes = tuple(int(b) for b in points.get("batch_sizes", (1, 8)))
    if not batch_sizes or min(batch_sizes) < 1:
        raise SpecError(f"points.batch_sizes {list(batch_sizes)}: give positive batch sizes")
    percentile = slo.get("percentile", "p99")
    from workbench.measure.timing import PERCENTILES

    if percentile not in PERCENTILES:
        raise SpecError(f"slo.percentile {percentile!r} unknown: use one of {list(PERCENTILES)}")
    return StudySpec(
        study=str(data.get("study") or default_name), task=str(data["task"]), variants=_variants(data["variants"]),
        batch_sizes=batch_sizes, seq_len=points.get("seq_len"), model=data.get("model"), data=data.get("data"),
        eval_limit=measure.get("eval_limit"), time_budget_s=float(measure.get("time_budget_s", 10.0)),
        threads=measure.get("threads"), slo_ms=slo.get("ms"), percentile=percentile,
        utilisation=float(data.get("utilisation", 1.0)), local_instance=str(data.get("local_instance", "c7i.large")),
        targets=tuple(_target(t, i) for i, t in enumerate(data.get("targets") or [])),
        shared_path=data.get("shared_path"), source=json.loads(json.dumps(data, default=str)))


def _no_unknown(section: dict, allowed: tuple, where: str) -> None:
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        raise SpecError(f"unknown field {unknown[0]!r} in {where}: the fields are {list(allowed)}")


def _section(data: dict, key: str, allowed: tuple) -> dict:
    section = data.get(key) or {}
    if not isinstance(section, dict):
        raise SpecError(f"{key} must be a mapping with fields {list(allowed)}")
    _no_unknown(section, allowed, key)
    return section


def _variants(raw) -> tuple[tuple[str, tuple], ...]:
    """Each variant's recipe as ``(step name, config dict)`` pairs, checked against the step registry."""
    if not isinstance(raw, dict) or not raw:
        raise SpecError("variants must map names to step lists, e.g. {baseline: [], int8: [{quantize_dynamic: {}}]}")
    return tuple((str(name), tuple(_step(entry, name) for entry in (steps or []))) for name, steps in raw.items())


def _step(entry, variant: str) -> tuple[str, dict]:
    import workbench.steps as steps
    from workbench.core import config_to_dict, registered_steps

    steps.discover()
    if not isinstance(entry, dict) or len(entry) != 1:
        raise SpecError(f"variant {variant!r}: each step is one mapping {{step_name: {{field: value}}}}, got {entry!r}")
    (name, fields), = entry.items()
    known = registered_steps()
    if name not in known:
        raise SpecError(f"variant {variant!r}: unknown step {name!r}: use one of {sorted(known)}")
    config_type, fields = known[name], fields or {}
    _no_unknown(fields, tuple(f.name for f in dataclasses.fields(config_type)), f"step {name!r} of variant {variant!r}")
    try:
        config = config_type(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})
    except (TypeError, ValueError) as exc:
        raise SpecError(f"variant {variant!r}, step {name!r}: {exc}") from exc
    return name, config_to_dict(config)


def _target(raw, index: int) -> Target:
    if not isinstance(raw, dict):
        raise SpecError(f"targets[{index}] must be a mapping with fields {list(TARGET_FIELDS)}")
    _no_unknown(raw, TARGET_FIELDS, f"targets[{index}]")
    if "name" not in raw or "instance" not in raw:
        raise SpecError(f"targets[{index}] needs a name and a price-table instance (e.g. instance: c7i.large)")
    resources = raw.get("resources") or {}
    if not isinstance(resources, dict):
        raise SpecError(f"targets[{index}].resources must map Ray resource names to amounts")
    return Target(name=str(raw["name"]), instance=str(raw["instance"]),
                  resources=tuple(sorted((str(k), float(v)) for k, v in resources.items())),
                  device=str(raw.get("device", "cpu")), gpus=float(raw.get("gpus", 0)))


__all__ = ["StudySpec", "Target", "SpecError", "load_spec", "parse_spec"]
