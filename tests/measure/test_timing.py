import time

import numpy as np
import pytest

from workbench.measure.batching import SweepConfig
from workbench.measure.timing import MIN_SAMPLES, highest_percentile, measure_latency, row_percentile


def test_latency_stats_are_ordered_and_reflect_work():
    stats = measure_latency(lambda: time.perf_counter_ns(), warmup=2, window_calls=10, max_windows=4)
    assert stats.p50_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.n_calls >= 10 and stats.n_windows >= 1 and stats.threads >= 1
    busy = measure_latency(lambda: sum(range(200_000)), warmup=1, window_calls=5, max_windows=3)
    assert busy.p50_ms > stats.p50_ms * 10


def test_unstable_measurement_is_flagged():
    calls = {"n": 0}

    def drifting():
        calls["n"] += 1
        end = time.perf_counter() + 0.0002 * calls["n"]  # each call slower than the last: never stable
        while time.perf_counter() < end:
            pass

    # min_calls=0: exactly the 3 windows (15 calls) asked for; with the default it would time 200 ever slower calls
    stats = measure_latency(drifting, warmup=0, window_calls=5, min_windows=3, max_windows=3, min_calls=0)
    assert not stats.stable and stats.window_spread > 1.1
    row = stats.as_row()
    assert row["stable"] is False and "latency_p50_ms" in row


def test_the_sample_rule_is_stated_once():
    # n * (1 - p/100) >= 2 calls above a tail percentile: p90 20, p95 40, p99 200 (the median needs no tail)
    assert MIN_SAMPLES == {"p50": 1, "p90": 20, "p95": 40, "p99": 200}
    assert SweepConfig.serving().min_calls == MIN_SAMPLES["p99"] and SweepConfig(percentile="p95").min_calls == 40


def test_a_percentile_needs_enough_calls_behind_it():
    # 30 calls (3 windows of 10, nothing more asked): p50 and p90 are measured; p95 and p99 would only be the slowest
    # calls, so the row says so instead of reporting them (was: p99 = the max of 30 calls).
    few = measure_latency(lambda: sum(range(2_000)), warmup=1, window_calls=10, min_windows=3, max_windows=3,
                          min_calls=0)
    assert few.n_calls == 30 and few.p50_ms is not None and few.p90_ms is not None
    assert few.p95_ms is None and few.p99_ms is None
    row = few.as_row()
    assert row["latency_p99_ms"] is None and row["latency_p99_note"] == "n=30 < 200"
    assert row["latency_p95_ms"] is None and row["latency_p95_note"] == "n=30 < 40"
    assert "latency_p90_note" not in row and "samples_ms" not in row
    # by default enough calls are timed for p99, and p95 is the 95th percentile of the calls themselves
    full = measure_latency(lambda: sum(range(2_000)), warmup=1, window_calls=10)
    assert full.n_calls >= 200 and len(full.samples_ms) == full.n_calls
    assert full.p95_ms == pytest.approx(float(np.percentile(full.samples_ms, 95)))
    assert full.p99_ms == pytest.approx(float(np.percentile(full.samples_ms, 99)))
    assert full.p50_ms <= full.p90_ms <= full.p95_ms <= full.p99_ms <= full.max_ms


def test_rows_timed_before_the_rule_do_not_pass_a_maximum_off_as_p99():
    old = {"latency_p90_ms": 2.0, "latency_p99_ms": 9.0, "n_calls": 30}   # p99 of 30 calls: the slowest one
    assert row_percentile(old, "p99") is None and row_percentile(old, "p90") == 2.0
    assert highest_percentile([old], "p99") == "p90"
