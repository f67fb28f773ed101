"""The time budget of an optimize run: what is spent, what is left, and each stage's estimate from what was measured.

Estimates come from this run's own measurements once there are any (a build's seconds, one evaluation's seconds, one
sweep point's seconds); before that, from the run's settings (timing windows are fixed lengths) and a prior per arm
kind for builds, said to be a prior. A stage whose estimate does not fit what is left is skipped and listed in the
decision's ``skipped_for_budget``, never cut short half-measured.

Example:
    >>> parse_duration("20m"), parse_duration("90s"), parse_duration("1h"), parse_duration("300")
    (1200.0, 90.0, 3600.0, 300.0)
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

# Seconds a build takes before any build of that kind was measured here (2 busy cores, demo-sized models): torch.compile
# and PT2E trace and compile, OpenVINO / ORT export to ONNX first. Replaced by measured means as builds finish.
BUILD_PRIOR_S = {"baseline": 1.0, "int8": 8.0, "bf16": 2.0, "compile": 45.0, "openvino": 15.0, "ort": 10.0,
                 "decode": 10.0, "weight-only": 15.0, "distilled": 60.0}
OVERHEAD = 1.25   # warm-ups, first calls, process noise on a shared machine: estimates are padded by a quarter


def parse_duration(text) -> float:
    """``"20m"``, ``"90s"``, ``"1.5h"`` or plain seconds -> seconds; a clear error otherwise."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([smh]?)\s*", str(text).lower())
        if not m:
            raise ValueError(f"budget {text!r} not understood: use seconds or a number with s, m or h (e.g. 20m)")
        value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    if value <= 0:
        raise ValueError(f"budget {text!r} must be positive (e.g. --budget 20m)")
    return value


def parse_rate(text) -> float | None:
    """``"5M/day"``, ``"200k/day"``, ``"1e6"`` (requests per day) -> per day; None stays None."""
    if text is None or isinstance(text, (int, float)):
        return None if text is None else float(text)
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kmb]?)\s*(?:/\s*d(?:ay)?)?\s*", str(text).lower())
    if not m:
        raise ValueError(f"traffic {text!r} not understood: use requests per day, e.g. 5M/day, 200k/day or 1e6")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "b": 1e9}[m.group(2)]


class BudgetError(ValueError):
    """The budget cannot hold even the baseline; the message says how much is needed."""


@dataclass
class Budget:
    """Seconds allowed, the clock, and the figures measured so far that estimates are made from."""

    budget_s: float
    spent_before_s: float = 0.0          # wall time of earlier (interrupted) runs of the same study
    start: float = field(default_factory=time.perf_counter)
    build_s: dict = field(default_factory=dict)       # kind -> measured build seconds
    eval_s: list = field(default_factory=list)        # seconds of one quality evaluation
    point_s: list = field(default_factory=list)       # seconds of one sweep point, as measured end to end

    @property
    def elapsed_s(self) -> float:
        return self.spent_before_s + time.perf_counter() - self.start

    @property
    def left_s(self) -> float:
        return self.budget_s - self.elapsed_s

    def build_estimate(self, kinds) -> float:
        total = 0.0
        for kind in kinds:
            seen = self.build_s.get(kind)
            total += (sum(seen) / len(seen)) if seen else BUILD_PRIOR_S.get(kind, 15.0)
        return total * OVERHEAD

    def eval_estimate(self, n: int, prior_s: float = 5.0) -> float:
        one = max(self.eval_s) if self.eval_s else prior_s
        return n * one * OVERHEAD

    def sweep_estimate(self, points: int, point_seconds: float) -> float:
        one = (sum(self.point_s) / len(self.point_s)) if self.point_s else point_seconds * 1.5
        return points * one * OVERHEAD

    def fits(self, estimate_s: float) -> bool:
        return estimate_s <= self.left_s

    def why_not(self, what: str, estimate_s: float) -> str:
        return f"{what} (needs ~{estimate_s:.0f} s, {max(self.left_s, 0):.0f} s left)"


__all__ = ["Budget", "BudgetError", "parse_duration", "parse_rate", "BUILD_PRIOR_S"]
