"""Latency measurement: warm-up, device sync, thread pinning, percentiles, stability over windows.

Also the one place that names latency percentiles (``PERCENTILES``) and turns a measurement into a row's timing
columns (``timing_columns``). Imports of torch/numpy stay inside functions so the CLI can read ``PERCENTILES``
without loading them.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

PERCENTILES = ("p50", "p90", "p95", "p99")   # every latency percentile a row, an SLO target or a CLI can name


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency in milliseconds over all timed calls, plus how the measurement went."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    first_call_ms: float       # the very first call (compile, allocator warm-up): reported apart
    n_calls: int
    n_windows: int
    window_spread: float       # max/min of the last 3 window medians; <= 1.10 counts as stable
    stable: bool
    threads: int

    def as_row(self) -> dict:
        return {f"latency_{k}" if k.endswith("_ms") else k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in asdict(self).items()}


# The percentiles a timing row stores; the others (p95) are read between them (see measure.slo.tail_latency_ms).
MEASURED_PERCENTILES = tuple(p for p in PERCENTILES if f"{p}_ms" in LatencyStats.__dataclass_fields__)


def percentile_ranks(names: tuple[str, ...] = MEASURED_PERCENTILES) -> tuple[tuple[str, float], ...]:
    """``(name, rank)`` pairs for ``np.percentile``: ``("p90", 90.0)``."""
    return tuple((name, float(name[1:])) for name in names)


def per_second(count: float, ms: float, digits: int | None = None) -> float:
    """``count`` things done in ``ms`` milliseconds, as a rate per second (rounded to ``digits`` if given)."""
    rate = count * 1e3 / ms
    return rate if digits is None else round(rate, digits)


def timing_columns(stats: LatencyStats, items: int, tokens: int | None = None) -> dict:
    """A row's timing columns: the latency figures, and throughput at the median call.

    Args:
        stats: the measurement of one call.
        items: requests (batch rows) one call serves: ``throughput_per_s``.
        tokens: tokens one call processes, or None where the task does not count tokens: ``tokens_per_s``.
    """
    row = {**stats.as_row(), "throughput_per_s": per_second(items, stats.p50_ms, 3)}
    if tokens is not None:
        row["tokens_per_s"] = per_second(tokens, stats.p50_ms, 1)
    return row


def pin_threads(threads: int | None) -> int:
    """Use the same intra-op thread count for every arm (torch here; ORT sessions take it at creation)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def timed_call(fn: Callable[[], object], device: str = "cpu") -> tuple[float, object]:
    """Milliseconds one call of ``fn`` takes, and what it returned.

    On "cuda" the device is synchronised before and after, so the timer covers the queued GPU work too.
    """
    from workbench.runtime.torch_runner import synchronize

    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return (time.perf_counter() - start) * 1e3, result


def _spread(medians: list[float]) -> float:
    return max(medians[-3:]) / max(min(medians[-3:]), 1e-9)


def measure_latency(fn: Callable[[], object], device: str = "cpu", warmup: int = 10, window_calls: int = 20,
                    min_windows: int = 3, max_windows: int = 10, max_seconds: float = 30.0,
                    threads: int | None = None, stable_spread: float = 1.10) -> LatencyStats:
    """Time ``fn()`` (one inference call) until the last 3 window medians agree within ``stable_spread``.

    Args:
        fn: zero-argument callable doing one inference call.
        device: "cuda" synchronises around each call so the timer covers the GPU work.
        warmup: untimed calls after the first one.
        window_calls: calls per window; windows repeat until stable, ``max_windows`` or ``max_seconds``.

    Example:
        >>> stats = measure_latency(lambda: variant(inputs))   # doctest: +SKIP
        >>> stats.p50_ms, stats.stable
    """
    import numpy as np

    used_threads = pin_threads(threads)
    first = timed_call(fn, device)[0]
    deadline = time.perf_counter() + max_seconds
    for _ in range(warmup):
        timed_call(fn, device)
        if time.perf_counter() > deadline:
            break
    times: list[float] = []
    medians: list[float] = []
    while len(medians) < max_windows:
        window = [timed_call(fn, device)[0] for _ in range(window_calls)]
        times.extend(window)
        medians.append(float(np.median(window)))
        if len(medians) >= min_windows and _spread(medians) <= stable_spread:
            break
        if time.perf_counter() > deadline and len(medians) >= 1:
            break
    arr = np.asarray(times)
    spread = _spread(medians)
    return LatencyStats(
        **{f"{name}_ms": float(np.percentile(arr, rank)) for name, rank in percentile_ranks()},
        mean_ms=float(arr.mean()), std_ms=float(arr.std()), min_ms=float(arr.min()), max_ms=float(arr.max()),
        first_call_ms=first, n_calls=len(arr), n_windows=len(medians), window_spread=float(spread),
        stable=len(medians) >= min_windows and spread <= stable_spread, threads=used_threads)
