"""Interleaved timing of several arms: round-robin, a few calls at a time, in one process.

Timing one arm after another lets a change in machine load (another process starting, a noisy neighbour, thermal
throttling) land on one arm alone and pass for a speed difference. Taking turns within every round spreads that
drift over all arms alike, so ratios between arms stay meaningful on a shared CPU.

``round_robin`` is the schedule (any arms: inference calls, whole generations, whole measurements);
``time_interleaved`` times calls with it and summarises each arm. ``arm_order`` rotates or (seeded) shuffles the order
of the arms each round, so no arm always runs right after the same neighbour (whose spinning worker threads or
cache footprint it would inherit). An arm that times its own call (in another process, where the pipe's round trip
is not its time) returns a :class:`Timed`.
"""
from __future__ import annotations

import itertools
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Sequence, TypeVar

from workbench.measure.timing import pin_threads, timed_call

T = TypeVar("T")
R = TypeVar("R")

MIN_ROUNDS = 5          # with a time budget, at least this many rounds: every arm gets several turns
MAX_ROUNDS_FACTOR = 10  # with a time budget, at most ``rounds`` x this many rounds: slow arms cannot run forever
CONTENDED = 1.5         # p50 above this x the fastest call: other load shared the CPU (stable=False)


@dataclass(frozen=True)
class Timed:
    """An arm's call that timed itself: ``ms`` is its own time, ``value`` what it returned."""

    ms: float
    value: object = None


def arm_order(names: Sequence[str], round_index: int, shuffle_seed: int | None = None) -> list[str]:
    """The arms' order in round ``round_index``: rotated by one each round (``shuffle_seed`` None), else a seeded
    shuffle per round (the same seed gives the same orders on every run).

    Example:
        >>> [arm_order("abc", r) for r in range(3)]
        [['a', 'b', 'c'], ['b', 'c', 'a'], ['c', 'a', 'b']]
    """
    names = list(names)
    if shuffle_seed is None:
        k = round_index % len(names) if names else 0
        return names[k:] + names[:k]
    random.Random(shuffle_seed * 1_000_003 + round_index).shuffle(names)
    return names


def round_robin(arms: dict[str, Callable[[], T]], rounds: int, calls_per_turn: int = 1,
                keep_going: Callable[[int], bool] | None = None,
                order: Callable[[int], Sequence[str]] | None = None) -> Iterator[tuple[int, str, T]]:
    """Call each arm ``calls_per_turn`` times in turn, round after round; yield ``(round, arm, result)`` per call.

    Whatever the caller does with a result happens between calls, never inside one. ``keep_going(round)`` is asked
    after each round (None: run all ``rounds``). ``order(round)`` gives the arms' order in that round (None: the
    dict's order every round; see :func:`arm_order`).

    Example:
        >>> [(r, a) for r, a, _ in round_robin({"a": int, "b": int}, rounds=2)]
        [(0, 'a'), (0, 'b'), (1, 'a'), (1, 'b')]
    """
    for r in range(rounds):
        for name in (order(r) if order is not None else list(arms)):
            for _ in range(calls_per_turn):
                yield r, name, arms[name]()
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


def timing_row(timing: ArmTiming, items: int, tokens: int | None, threads: int, first_ms: float | None,
               calls_per_turn: int) -> dict:
    """A results row's timing columns (``timing.timing_columns``) for one interleaved arm.

    Every percentile comes from the arm's own timed calls (None, with a note, where there are too few for it), with
    ``n_calls``; a "window" is one round's turn of the arm (``calls_per_turn`` calls), so ``window_spread`` says how
    far the arm's per-round medians moved. ``stable`` is the interleaved notion: p50 within ``CONTENDED`` x the
    fastest call. ``items`` / ``tokens``: what one call serves (throughput columns).
    """
    import dataclasses

    import numpy as np

    from workbench.measure.timing import LatencyStats, enough_samples, percentile_ranks, timing_columns

    arr = np.asarray(timing.samples_ms)
    turns = [float(np.median(arr[i:i + calls_per_turn])) for i in range(0, len(arr), calls_per_turn)]
    values = {f"{name}_ms": float(np.percentile(arr, rank)) if enough_samples(name, len(arr)) else None
              for name, rank in percentile_ranks()}
    values.update(mean_ms=float(arr.mean()), std_ms=float(arr.std()), min_ms=float(arr.min()), max_ms=float(arr.max()),
                  first_call_ms=None if first_ms is None else float(first_ms), n_calls=len(arr), n_windows=len(turns),
                  window_spread=max(turns[-3:]) / max(min(turns[-3:]), 1e-9), stable=bool(timing.stable),
                  threads=int(threads), samples_ms=tuple(timing.samples_ms))
    fields = {f.name for f in dataclasses.fields(LatencyStats)}
    stats = LatencyStats(**{k: v for k, v in values.items() if k in fields})
    return {**timing_columns(stats, items, tokens), "timing": "interleaved"}


def _arm_timing(times_ms: list[float]) -> ArmTiming:
    import numpy as np

    arr = np.asarray(times_ms)
    p50, low = float(np.percentile(arr, 50)), float(arr.min())
    return ArmTiming(p50_ms=p50, p90_ms=float(np.percentile(arr, 90)), min_ms=low, total_ms=float(arr.sum()),
                     n_calls=len(arr), stable=p50 <= CONTENDED * low, samples_ms=tuple(float(t) for t in arr))


def _schedule(n_arms: int, rounds: int, seconds: float | None, min_rounds: int = MIN_ROUNDS
              ) -> tuple[int, Callable[[int], bool] | None]:
    """(most rounds, keep_going): ``rounds`` exactly, or rounds until a budget of ``seconds`` per arm per round."""
    if seconds is None:
        return rounds, None
    deadline = time.perf_counter() + seconds * n_arms * rounds
    return rounds * MAX_ROUNDS_FACTOR, lambda r: r < min_rounds - 1 or time.perf_counter() <= deadline


def time_interleaved(arms: dict[str, Callable[[], object]], rounds: int = 5, seconds: float | None = None,
                     threads: int | None = None, calls_per_turn: int = 3, warmup: int = 5, device: str = "cpu",
                     record: Callable[[str, object], None] | None = None, shuffle_seed: int | None = None,
                     rotate: bool = False, errors: dict[str, str] | None = None,
                     first_ms: dict[str, float] | None = None, min_rounds: int = MIN_ROUNDS) -> dict[str, ArmTiming]:
    """Time every arm's calls interleaved: each round, each arm makes ``calls_per_turn`` calls in turn.

    Args:
        arms: name -> zero-argument callable doing one call (one inference, one generation, ...). A call that returns
            a :class:`Timed` is counted at its own ``ms`` (and ``record`` gets its ``value``).
        rounds: without ``seconds``, exactly this many rounds.
        seconds: time budget per arm per round: rounds go on until ``seconds x arms x rounds`` have passed, at least
            ``min_rounds`` (default ``MIN_ROUNDS``) and at most ``MAX_ROUNDS_FACTOR x rounds`` of them.
        threads: intra-op threads for torch (the same for every arm).
        warmup: untimed calls per arm first, the same count for every arm (allocations, ORT arena, kernel choice).
        device: "cuda" synchronises around each call so the timer covers the GPU work.
        record: ``record(arm, result)`` for each timed call, called between calls (outside the timer).
        shuffle_seed, rotate: the arms' order per round (:func:`arm_order`): a seeded shuffle when ``shuffle_seed``
            is given, else rotated by one each round when ``rotate``, else the dict's order every round.
        errors: when given, an arm whose call raises leaves the run and ``errors[arm]`` says why ("Type: message");
            the others go on, and the result has no entry for it. Without it the exception propagates.
        first_ms: when given, ``first_ms[arm]`` is the time of the arm's first warm-up call (compilation, allocation:
            reported apart, never among the timed calls).

    Example:
        >>> timing = time_interleaved({"fp32": lambda: base(x), "int8": lambda: q(x)}, seconds=2)   # doctest: +SKIP
        >>> timing["fp32"].p50_ms / timing["int8"].p50_ms
    """
    pin_threads(threads)
    failed: dict[str, str] = {} if errors is None else errors

    def guarded(name: str, fn: Callable[[], object]) -> Callable[[], tuple[float, object] | None]:
        def call():
            if name in failed:
                return None
            try:
                ms, result = timed_call(fn, device)
            except Exception as exc:  # noqa: BLE001 - only when the caller asked for errors: one arm's crash is a row
                if errors is None:
                    raise
                failed[name] = f"{type(exc).__name__}: {exc}"
                return None
            return (result.ms, result.value) if isinstance(result, Timed) else (ms, result)
        return call

    timed = {name: guarded(name, fn) for name, fn in arms.items()}
    for name in arm_order(list(arms), 0, shuffle_seed):
        for i in range(warmup):
            out = timed[name]()
            if i == 0 and out is not None and first_ms is not None:
                first_ms[name] = out[0]
    names = list(arms)
    order = None if shuffle_seed is None and not rotate else (
        lambda r: [n for n in arm_order(names, r, shuffle_seed) if n not in failed])
    n_rounds, keep_going = _schedule(len(arms), rounds, seconds, min_rounds)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _round, name, out in round_robin(timed, n_rounds, calls_per_turn, keep_going, order):
        if out is None:
            continue
        times[name].append(out[0])
        if record is not None:
            record(name, out[1])
    return {name: _arm_timing(t) for name, t in times.items() if t and name not in failed}


__all__ = ["time_interleaved", "round_robin", "arm_order", "cycling", "ArmTiming", "Timed", "timing_row"]
