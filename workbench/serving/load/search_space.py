"""The grid a serving-config search walks (coarse, then fine around the coarse winner) and the goodput climb.

See :mod:`workbench.serving.load.config_search` for the search as a whole.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from workbench.serving.bundle.serving_config import ServingConfig


@dataclass(frozen=True)
class SearchSpace:
    """The grid the search walks. Queue delays are fractions of the SLO (scale-free across models)."""

    instance_counts: tuple[int, ...] = (1, 2)
    max_batch_sizes: tuple[int, ...] = (4, 8, 16)
    queue_delay_fractions: tuple[float, ...] = (0.0, 0.05, 0.2)
    preferred: tuple[bool, ...] = (False, True)
    cores: int | None = None  # intra-op threads shared by the instances (None: the server's CPUs, see load.pinned)

    def __post_init__(self):
        if not self.instance_counts or min(self.instance_counts) < 1:
            raise ValueError(f"instance_counts {self.instance_counts} must be non-empty, each >= 1")
        if not self.max_batch_sizes or min(self.max_batch_sizes) < 1:
            raise ValueError(f"max_batch_sizes {self.max_batch_sizes} must be non-empty, each >= 1")
        if not self.queue_delay_fractions or not all(0 <= f <= 1 for f in self.queue_delay_fractions):
            raise ValueError(f"queue_delay_fractions {self.queue_delay_fractions}: fractions of the SLO in 0..1")
        if not self.preferred:
            raise ValueError("preferred must hold False, True or both")
        if self.cores is not None and self.cores < 1:
            raise ValueError(f"cores {self.cores} must be >= 1 (or None for this machine's count)")

    @classmethod
    def small(cls) -> "SearchSpace":
        """A handful of candidates (tests, notebooks, WORKBENCH_SMALL)."""
        return cls(instance_counts=(1, 2), max_batch_sizes=(8,), queue_delay_fractions=(0.0, 0.1), preferred=(False,))

    def _threads(self, count: int) -> int:
        from workbench.serving.load.pinned import cpu_split

        return max(1, (self.cores or len(cpu_split()["server_cpus"])) // count)

    def _config(self, count: int, mbs: int, fraction: float, preferred: bool, slo_ms: float) -> ServingConfig:
        delay = int(min(fraction * slo_ms * 1000, 100_000))
        return ServingConfig(max_batch_size=mbs, preferred_batch_sizes=(mbs,) if preferred else (),
                             max_queue_delay_us=delay, instance_count=count, threads=self._threads(count))

    def coarse(self, slo_ms: float) -> list[ServingConfig]:
        return [self._config(c, b, self.queue_delay_fractions[0], self.preferred[0], slo_ms)
                for c in self.instance_counts for b in self.max_batch_sizes]

    def fine(self, best: ServingConfig, slo_ms: float) -> list[ServingConfig]:
        """Queue delay x preferred size around ``best`` (its batch size and instances), ``best`` itself left out."""
        out = [self._config(best.instance_count, best.max_batch_size, f, p, slo_ms)
               for f in self.queue_delay_fractions for p in self.preferred]
        return [c for c in dict.fromkeys(out) if c != best]


@dataclass(frozen=True)
class ClimbSettings:
    """How goodput is found for one candidate (see the module doc)."""

    growth: float = 1.5
    refine: int = 2
    measured: int = 220         # requests counted per point (p99 needs >= 200)
    warmup_s: float = 0.5
    max_points: int = 9
    timeout_s: float = 10.0
    max_point_s: float = 15.0   # never go down to a rate whose point would take longer than this

    def __post_init__(self):
        if self.growth <= 1 or self.refine < 0 or self.max_points < 2:
            raise ValueError(f"growth ({self.growth}) must be > 1, refine ({self.refine}) >= 0, max_points "
                             f"({self.max_points}) >= 2")
        if self.measured < 200:
            raise ValueError(f"measured {self.measured} < 200: a p99 SLO needs at least 200 requests per point")


def _outcome(row: dict) -> str:
    return row.get("slo_outcome") or ("pass" if row["meets_slo"] else "miss")


def climb(measure: Callable[[float], tuple], start_rate: float, settings: ClimbSettings) -> tuple[float | None, list]:
    """Goodput by a geometric climb then bisection; ``measure(rate) -> (LoadResult, row)``. Returns (goodput, points).

    A client-limited point (``slo_outcome``) ends the climb where it is: it is neither a pass nor a miss, so nothing
    above the last pass can be judged and the goodput is a lower bound (the caller reads that from the points)."""
    points, good, bad, rate = [], None, None, start_rate
    while len(points) < settings.max_points:
        res, row = measure(rate)
        points.append((res, row))
        if _outcome(row) == "client-limited":
            return good, points
        if _outcome(row) == "pass":
            good = rate
            if bad is not None:
                break
            rate *= settings.growth
        else:
            bad = rate
            if good is not None:
                break
            rate /= 2  # even the start failed: look lower, while a point stays short
            if settings.measured / rate > settings.max_point_s:
                break
    for _ in range(settings.refine):
        if good is None or bad is None or len(points) >= settings.max_points:
            break
        mid = math.sqrt(good * bad)
        res, row = measure(mid)
        points.append((res, row))
        if _outcome(row) == "client-limited":
            break
        good, bad = (mid, bad) if _outcome(row) == "pass" else (good, mid)
    return good, points


__all__ = ["SearchSpace", "ClimbSettings", "climb"]
