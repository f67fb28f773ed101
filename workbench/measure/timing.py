"""Latency measurement: warm-up, device sync, thread pinning, percentiles, stability over windows."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch

from workbench.runtime.torch_runner import synchronize


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


def pin_threads(threads: int | None) -> int:
    """Use the same intra-op thread count for every arm (torch here; ORT sessions take it at creation)."""
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


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
    used_threads = pin_threads(threads)

    def timed() -> float:
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        return (time.perf_counter() - start) * 1e3

    first = timed()
    deadline = time.perf_counter() + max_seconds
    for _ in range(warmup):
        timed()
        if time.perf_counter() > deadline:
            break
    times: list[float] = []
    medians: list[float] = []
    while len(medians) < max_windows:
        window = [timed() for _ in range(window_calls)]
        times.extend(window)
        medians.append(float(np.median(window)))
        spread = max(medians[-3:]) / max(min(medians[-3:]), 1e-9)
        if len(medians) >= min_windows and spread <= stable_spread:
            break
        if time.perf_counter() > deadline and len(medians) >= 1:
            break
    arr = np.asarray(times)
    spread = max(medians[-3:]) / max(min(medians[-3:]), 1e-9)
    return LatencyStats(
        p50_ms=float(np.percentile(arr, 50)), p90_ms=float(np.percentile(arr, 90)), p99_ms=float(np.percentile(arr, 99)),
        mean_ms=float(arr.mean()), std_ms=float(arr.std()), min_ms=float(arr.min()), max_ms=float(arr.max()),
        first_call_ms=first, n_calls=len(arr), n_windows=len(medians), window_spread=float(spread),
        stable=len(medians) >= min_windows and spread <= stable_spread, threads=used_threads)
