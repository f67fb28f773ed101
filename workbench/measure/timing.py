"""Latency measurement: warm-up, device sync, the runner's thread count, percentiles, stability over windows.

Also the one place that names latency percentiles (``PERCENTILES``), states how many timed calls each one needs
(``MIN_SAMPLES``) and turns a measurement into a row's timing columns (``timing_columns``). Imports of torch/numpy
stay inside functions so the CLI can read ``PERCENTILES`` without loading them.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

PERCENTILES = ("p50", "p90", "p95", "p99")   # every latency percentile a row, an SLO target or a CLI can name

# How many timed calls a percentile needs before it is reported: the one rule. A tail percentile of n calls is
# only more than the slowest call when at least TAIL_CALLS calls lie above it, i.e. n * (1 - p/100) >= TAIL_CALLS:
# p90 20, p95 40, p99 200 calls. With fewer (the "p99" of 30 calls is their maximum) the row stores None and says
# why in ``latency_<p>_note`` ("n=30 < 200"); readers fall back to the highest percentile that has them. The median
# is not a tail: any number of calls has one (p50: 1), and throughput is read from it.
TAIL_CALLS = 2


def min_samples_for(rank: float) -> int:
    """Timed calls a percentile at ``rank`` (e.g. 99.9) needs: TAIL_CALLS of them above it; the median needs 1."""
    if rank <= 50:
        return 1
    return math.ceil(round(TAIL_CALLS * 100 / (100 - rank), 6))  # round: 200 / 0.1 is 2000.0000000000002 in floats


MIN_SAMPLES = {p: min_samples_for(float(p[1:])) for p in PERCENTILES}


def percentile_rank(name: str) -> float:
    """``"p95"`` -> 95.0 (a clear error for a name not in ``PERCENTILES``)."""
    if name not in PERCENTILES:
        raise ValueError(f"percentile {name!r} unknown: use one of {PERCENTILES}")
    return float(name[1:])


def enough_samples(name: str, n_calls: int) -> bool:
    """Whether ``n_calls`` timed calls are enough to report percentile ``name`` (see ``MIN_SAMPLES``)."""
    percentile_rank(name)
    return n_calls >= MIN_SAMPLES[name]


def samples_note(name: str, n_calls: int) -> str:
    """Why percentile ``name`` is not reported: ``"n=30 < 200"``."""
    return f"n={n_calls} < {MIN_SAMPLES[name]}"


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency in milliseconds over all timed calls, plus how the measurement went.

    A percentile is None when fewer than ``MIN_SAMPLES[p]`` calls were timed. ``samples_ms`` keeps every timed call
    (not written to rows), so any percentile can be read from the calls themselves (:meth:`percentile`).
    """

    p50_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    first_call_ms: float       # the very first call (compile, allocator warm-up): reported apart
    n_calls: int
    n_windows: int
    window_spread: float       # max/min of the last 3 window medians; <= 1.10 counts as stable
    stable: bool
    threads: int               # intra-op threads the timed calls ran at (the runner's own count)
    samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def percentile(self, name: str) -> float | None:
        """Percentile ``name`` of the timed calls, or None with fewer than ``MIN_SAMPLES[name]`` of them."""
        import numpy as np

        if not self.samples_ms:
            return getattr(self, f"{name}_ms")
        if not enough_samples(name, len(self.samples_ms)):
            return None
        return float(np.percentile(np.asarray(self.samples_ms), percentile_rank(name)))

    def as_row(self) -> dict:
        """Row columns: ``latency_<p>_ms`` (None with ``latency_<p>_note`` when too few calls), n_calls, stable, ..."""
        row = {f"latency_{k}" if k.endswith("_ms") else k: (round(v, 4) if isinstance(v, float) else v)
               for k, v in asdict(self).items() if k != "samples_ms"}
        for name in PERCENTILES:
            if row[f"latency_{name}_ms"] is None:
                row[f"latency_{name}_note"] = samples_note(name, self.n_calls)
        return row


# Every percentile is measured from the timed calls (p95 is no longer read between p90 and p99).
MEASURED_PERCENTILES = PERCENTILES


def percentile_ranks(names: tuple[str, ...] = PERCENTILES) -> tuple[tuple[str, float], ...]:
    """``(name, rank)`` pairs for ``np.percentile``: ``("p90", 90.0)``."""
    return tuple((name, percentile_rank(name)) for name in names)


def row_percentile(row: dict, name: str) -> float | None:
    """A row's ``latency_<name>_ms``: measured from its own timed calls, or None (too few calls, or not stored)."""
    percentile_rank(name)
    value = row.get(f"latency_{name}_ms")
    if value is None or (row.get("n_calls") is not None and not enough_samples(name, int(row["n_calls"]))):
        return None
    return float(value)


def highest_percentile(rows: list[dict], wanted: str) -> str | None:
    """The highest percentile, ``wanted`` or below, that every row in ``rows`` reports; None if there is none."""
    percentile_rank(wanted)
    for name in reversed(PERCENTILES[:PERCENTILES.index(wanted) + 1]):
        if rows and all(row_percentile(r, name) is not None for r in rows):
            return name
    return None


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
    median = stats.p50_ms
    row = {**stats.as_row(), "throughput_per_s": per_second(items, median, 3) if median else None}
    if tokens is not None:
        row["tokens_per_s"] = per_second(tokens, median, 1) if median else None
    return row


def pin_threads(threads: int | None) -> int:
    """Set torch's global intra-op count (and leave it so); returns the count now in effect.

    For arms that are plain callables over torch code. A Variant's runner fixes its own count when it is created
    (ONNX Runtime sessions cannot change theirs later): give it with ``runtime.with_threads`` and time it with
    :func:`measure_latency` ``threads=runtime.runner_threads(variant)`` instead.
    """
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
                    threads: int | None = None, stable_spread: float = 1.10,
                    min_calls: int | None = None) -> LatencyStats:
    """Time ``fn()`` (one inference call) until the last 3 window medians agree and enough calls are timed.

    Args:
        fn: zero-argument callable doing one inference call.
        device: "cuda" synchronises around each call so the timer covers the GPU work.
        warmup: untimed calls after the first one.
        window_calls: calls per window at least (grown to a twentieth of the calls that fit: ``min_calls`` or what
            the budget allows at the warm-up pace); windows repeat until stable (or ``max_windows``) and at least
            ``min_calls`` calls are timed, or until ``max_seconds`` have passed (the bound: percentiles the calls timed
            by then cannot support are None, see ``MIN_SAMPLES``).
        threads: the intra-op count ``fn`` runs at: for a variant, its runner's own count
            (``runtime.runner_threads``), recorded in ``LatencyStats.threads``. torch's count is held at it while
            timing and restored after. None: torch's count as it is.
        min_calls: timed calls wanted (default ``MIN_SAMPLES["p99"]``: enough for every percentile).

    Example:
        >>> stats = measure_latency(lambda: variant(inputs), threads=runner_threads(variant))   # doctest: +SKIP
        >>> stats.p50_ms, stats.p99_ms, stats.stable
    """
    import numpy as np

    from workbench.runtime.threads import check_threads, torch_threads

    min_calls = MIN_SAMPLES[PERCENTILES[-1]] if min_calls is None else max(int(min_calls), 0)
    with torch_threads(check_threads(threads)) as used_threads:
        first = timed_call(fn, device)[0]
        deadline = time.perf_counter() + max_seconds
        warm = [first]
        for _ in range(warmup):
            warm.append(timed_call(fn, device)[0])
            if time.perf_counter() > deadline:
                break
        # About 20 windows over the calls that will be timed (min_calls, or fewer when the budget cannot fit them at
        # the warm-up pace): bigger windows have steadier medians, so stability is judged on the variant, not noise,
        # and a pace 6x slower than the warm-up still leaves the 3 windows stability needs.
        expected = min(min_calls, (deadline - time.perf_counter()) * 1e3 / max(float(np.median(warm)), 1e-6))
        window_calls = max(window_calls, int(expected) // 20)
        times: list[float] = []
        medians: list[float] = []
        window: list[float] = []
        while True:
            window.append(timed_call(fn, device)[0])
            out_of_time = time.perf_counter() > deadline  # checked every call: a slow call overshoots by one call
            if len(window) == window_calls or (out_of_time and (not medians or 2 * len(window) >= window_calls)):
                medians.append(float(np.median(window)))  # a window cut short by the deadline counts if half full
            if len(window) == window_calls or out_of_time:
                times.extend(window)
                window = []
            settled = len(medians) >= max_windows or (len(medians) >= min_windows
                                                       and _spread(medians) <= stable_spread)
            if out_of_time or (not window and settled and len(times) >= min_calls):
                break
    arr = np.asarray(times)
    spread = _spread(medians)
    return LatencyStats(
        **{f"{name}_ms": float(np.percentile(arr, rank)) if enough_samples(name, len(arr)) else None
           for name, rank in percentile_ranks()},
        mean_ms=float(arr.mean()), std_ms=float(arr.std()), min_ms=float(arr.min()), max_ms=float(arr.max()),
        first_call_ms=first, n_calls=len(arr), n_windows=len(medians), window_spread=float(spread),
        stable=len(medians) >= min_windows and spread <= stable_spread, threads=int(used_threads),
        samples_ms=tuple(float(t) for t in arr))
