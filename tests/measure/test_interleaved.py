"""Interleaved timing: arms take turns, each arm is called as often, and a dearer arm times dearer."""
import time

from workbench.measure.interleaved import MIN_ROUNDS, cycling, round_robin, time_interleaved


def _busy_arm(name: str, ms: float, calls: list):
    def arm():
        calls.append(name)
        end = time.perf_counter() + ms / 1e3
        while time.perf_counter() < end:   # busy, not sleep: the arm costs CPU like an inference call
            pass
        return name
    return arm


def test_arms_are_interleaved_counted_alike_and_ordered_by_cost():
    calls, recorded = [], []
    arms = {"fast": _busy_arm("fast", 0.2, calls), "slow": _busy_arm("slow", 2.0, calls)}
    timing = time_interleaved(arms, rounds=4, calls_per_turn=2, warmup=1,
                              record=lambda arm, result: recorded.append((arm, result)))
    assert calls == ["fast", "slow"] + ["fast", "fast", "slow", "slow"] * 4   # warm-up, then turns of 2 calls
    assert recorded == [(name, name) for name in calls[2:]]                   # each timed call's result, in order
    assert timing["fast"].n_calls == timing["slow"].n_calls == 8
    assert timing["slow"].min_ms >= 2.0 > timing["fast"].min_ms
    assert timing["slow"].p50_ms > timing["fast"].p50_ms
    assert timing["slow"].total_ms >= 8 * 2.0
    assert set(timing["fast"].as_dict()) == {"p50_ms", "p90_ms", "min_ms", "n_calls", "stable"}


def test_a_time_budget_runs_at_least_min_rounds_and_at_most_ten_times_rounds():
    calls: list = []
    arms = {"a": _busy_arm("a", 0.0, calls), "b": _busy_arm("b", 0.0, calls)}
    spent = time_interleaved(arms, rounds=2, seconds=1e-9, calls_per_turn=3, warmup=0)
    assert spent["a"].n_calls == spent["b"].n_calls == MIN_ROUNDS * 3
    roomy = time_interleaved(arms, rounds=2, seconds=60.0, calls_per_turn=1, warmup=0)
    assert roomy["a"].n_calls == roomy["b"].n_calls == 2 * 10


def test_round_robin_and_cycling_walk_the_same_inputs_in_step():
    arms = {"x": cycling(lambda v: ("x", v), [10, 20]), "y": cycling(lambda v: ("y", v), [10, 20])}
    got = [(r, name, out) for r, name, out in round_robin(arms, rounds=3)]
    assert got == [(0, "x", ("x", 10)), (0, "y", ("y", 10)), (1, "x", ("x", 20)), (1, "y", ("y", 20)),
                   (2, "x", ("x", 10)), (2, "y", ("y", 10))]
    stopped = list(round_robin({"x": int}, rounds=10, keep_going=lambda r: r < 1))
    assert len(stopped) == 2
