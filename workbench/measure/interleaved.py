"""Interleaved timing of several arms: round-robin, a few calls at a time, in one process.

Timing one arm after another lets a change in machine load (another process starting, a noisy neighbour, thermal
throttling) land on one arm alone and pass for a speed difference. Taking turns within every round spreads that
drift over all arms alike, so ratios between arms stay meaningful on a shared CPU.

``round_robin`` is the schedule (any arms: inference calls, whole generations, whole measurements);
``time_interleaved`` times calls with it and summarises each arm.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Sequence, TypeVar

from workbench.measure.timing import pin_threads, timed_call

T = TypeVar("T")
R = TypeVar("R")

MIN_ROUNDS = 5          # with a time budget, at least this many rounds: every arm gets several turns
MAX_ROUNDS_FACTOR = 10  # with a time budget, at most ``rounds`` x this many rounds: slow arms cannot run forever
CONTENDED = 1.5         # p50 above this x the fastest call: other load shared the CPU (stable=False)


def round_robin(arms: dict[str, Callable[[], T]], rounds: int, calls_per_turn: int = 1,
                keep_going: Callable[[int], bool] | None = None) -> Iterator[tuple[int, str, T]]:
    """Call each arm ``calls_per_turn`` times in turn, round after round; yield ``(round, arm, result)`` per call.

    Whatever the caller does with a result happens between calls, never inside one. ``keep_going(round)`` is asked
    after each round (None: run all ``rounds``).

    Example:
        >>> [(r, a) for r, a, _ in round_robin({"a": int, "b": int}, rounds=2)]
        [(0, 'a'), (0, 'b'), (1, 'a'), (1, 'b')]
    """
    for r in range(rounds):
        for name, fn in arms.items():
            for _ in range(calls_per_turn):
                yield r, name, fn()
        if keep_going is not None and not keep_going(r):
            return


def cycling(fn: Callable[[T], R], items: Sequence[T]) -> Callable[[], R]:
    """A zero-argument arm whose k-th call is ``fn(items[k % len(items)])``.

    Arms built over the same ``items`` walk them in step: in round k every arm gets the same prompt.
    """
    calls = itertools.count()
    return lambda: fn(items[next(calls) % len(items)])


@dataclass(frozen=True)
class ArmTiming:
    """One arm's calls (ms): median, p90, fastest, total, how many, and whether the run looks uncontended."""

    p50_ms: float
    p90_ms: float
    min_ms: float
    total_ms: float
    n_calls: int
    stable: bool   # p50 <= CONTENDED x min: the min shows a quiet machine, a p50 far above it a contended run
    samples_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)  # every timed call, in call order

    @property
    def p99_ms(self) -> float | None:
        """p99 of the calls; None with fewer than ``timing.MIN_SAMPLES["p99"]`` of them (it would be their max)."""
        import numpy as np

        from workbench.measure.timing import enough_samples

        return float(np.percentile(self.samples_ms, 99)) if enough_samples("p99", len(self.samples_ms)) else None

    def as_dict(self, digits: int = 3) -> dict:
        """``p50_ms``, ``p90_ms``, ``min_ms`` (rounded), ``n_calls`` and ``stable``: the benchmarks' per-arm figures."""
        out = {k: round(v, digits) if isinstance(v, float) else v for k, v in asdict(self).items()}
        del out["total_ms"], out["samples_ms"]
        return out


def _arm_timing(times_ms: list[float]) -> ArmTiming:
    import numpy as np

    arr = np.asarray(times_ms)
    p50, low = float(np.percentile(arr, 50)), float(arr.min())
    return ArmTiming(p50_ms=p50, p90_ms=float(np.percentile(arr, 90)), min_ms=low, total_ms=float(arr.sum()),
                     n_calls=len(arr), stable=p50 <= CONTENDED * low, samples_ms=tuple(float(t) for t in arr))


def _schedule(n_arms: int, rounds: int, seconds: float | None) -> tuple[int, Callable[[int], bool] | None]:
    """(most rounds, keep_going): ``rounds`` exactly, or rounds until a budget of ``seconds`` per arm per round."""
    if seconds is None:
        return rounds, None
    deadline = time.perf_counter() + seconds * n_arms * rounds
    return rounds * MAX_ROUNDS_FACTOR, lambda r: r < MIN_ROUNDS - 1 or time.perf_counter() <= deadline


def time_interleaved(arms: dict[str, Callable[[], object]], rounds: int = 5, seconds: float | None = None,
                     threads: int | None = None, calls_per_turn: int = 3, warmup: int = 5, device: str = "cpu",
                     record: Callable[[str, object], None] | None = None) -> dict[str, ArmTiming]:
    """Time every arm's calls interleaved: each round, each arm makes ``calls_per_turn`` calls in turn.

    Args:
        arms: name -> zero-argument callable doing one call (one inference, one generation, ...).
        rounds: without ``seconds``, exactly this many rounds.
        seconds: time budget per arm per round: rounds go on until ``seconds x arms x rounds`` have passed, at least
            ``MIN_ROUNDS`` and at most ``MAX_ROUNDS_FACTOR x rounds`` of them.
        threads: intra-op threads for torch (the same for every arm).
        warmup: untimed calls per arm first (allocations, ORT arena, kernel choice).
        device: "cuda" synchronises around each call so the timer covers the GPU work.
        record: ``record(arm, result)`` for each timed call, called between calls (outside the timer).

    Example:
        >>> timing = time_interleaved({"fp32": lambda: base(x), "int8": lambda: q(x)}, seconds=2)   # doctest: +SKIP
        >>> timing["fp32"].p50_ms / timing["int8"].p50_ms
    """
    pin_threads(threads)
    for fn in arms.values():
        for _ in range(warmup):
            fn()
    timed = {name: (lambda fn=fn: timed_call(fn, device)) for name, fn in arms.items()}
    n_rounds, keep_going = _schedule(len(arms), rounds, seconds)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _round, name, (ms, result) in round_robin(timed, n_rounds, calls_per_turn, keep_going):
        times[name].append(ms)
        if record is not None:
            record(name, result)
    return {name: _arm_timing(t) for name, t in times.items()}


__all__ = ["time_interleaved", "round_robin", "cycling", "ArmTiming"]
