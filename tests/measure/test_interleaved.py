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
    # a caller may lower the minimum (the optimize screen's first round: one turn per arm for slow whole requests)
    one = time_interleaved(arms, rounds=1, seconds=1e-9, calls_per_turn=3, warmup=0, min_rounds=1)
    assert one["a"].n_calls == one["b"].n_calls == 3


def test_round_robin_and_cycling_walk_the_same_inputs_in_step():
    arms = {"x": cycling(lambda v: ("x", v), [10, 20]), "y": cycling(lambda v: ("y", v), [10, 20])}
    got = [(r, name, out) for r, name, out in round_robin(arms, rounds=3)]
    assert got == [(0, "x", ("x", 10)), (0, "y", ("y", 10)), (1, "x", ("x", 20)), (1, "y", ("y", 20)),
                   (2, "x", ("x", 10)), (2, "y", ("y", 10))]
    stopped = list(round_robin({"x": int}, rounds=10, keep_going=lambda r: r < 1))
    assert len(stopped) == 2


def _work_arms():
    return {"fast": lambda: sum(range(2000)), "slow": lambda: sum(range(20000))}


def test_timing_row_carries_every_percentile_with_its_call_count_and_throughput():
    import numpy as np
    import pytest

    from workbench.measure.interleaved import timing_row
    from workbench.measure.timing import MIN_SAMPLES, per_second

    rounds = -(-MIN_SAMPLES["p99"] // 3)          # enough calls for a p99
    first: dict = {}
    timing = time_interleaved(_work_arms(), rounds=rounds, calls_per_turn=3, warmup=1, first_ms=first)
    for name, t in timing.items():
        row = timing_row(t, items=8, tokens=320, threads=2, first_ms=first[name], calls_per_turn=3)
        samples = np.asarray(t.samples_ms)
        assert row["n_calls"] == len(samples) == rounds * 3
        for p, rank in (("p50", 50), ("p90", 90), ("p99", 99)):
            assert row[f"latency_{p}_ms"] == pytest.approx(np.percentile(samples, rank), abs=1e-4)
        assert t.p99_ms == pytest.approx(np.percentile(samples, 99))
        median = float(np.percentile(samples, 50))
        assert row["throughput_per_s"] == pytest.approx(per_second(8, median), rel=1e-3)
        assert row["tokens_per_s"] == pytest.approx(per_second(320, median), rel=1e-3)
        assert row["threads"] == 2 and row["latency_first_call_ms"] == pytest.approx(first[name], abs=1e-4)
        assert row["n_windows"] == rounds and row["timing"] == "interleaved"


def test_too_few_calls_leave_the_tail_percentile_empty_and_say_why():
    from workbench.measure.interleaved import timing_row

    first: dict = {}
    timing = time_interleaved(_work_arms(), rounds=5, calls_per_turn=3, warmup=1, first_ms=first)
    row = timing_row(timing["fast"], items=1, tokens=None, threads=1, first_ms=first["fast"], calls_per_turn=3)
    assert row["n_calls"] == 15 and row["latency_p50_ms"] is not None and row["throughput_per_s"] > 0
    assert row["latency_p99_ms"] is None and "n=15" in row["latency_p99_note"] and timing["fast"].p99_ms is None
    assert "tokens_per_s" not in row


def test_an_arm_that_raises_leaves_the_run_with_its_reason_and_self_timed_calls_count_their_own_time():
    from workbench.measure.interleaved import Timed

    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("segfault-ish")

    errors: dict = {}
    timing = time_interleaved({"ok": lambda: Timed(7.0, "v"), "flaky": flaky}, rounds=4, calls_per_turn=1, warmup=1,
                              errors=errors)
    assert set(timing) == {"ok"} and errors == {"flaky": "RuntimeError: segfault-ish"} and calls["n"] == 4
    assert timing["ok"].p50_ms == 7.0 and timing["ok"].n_calls == 4
