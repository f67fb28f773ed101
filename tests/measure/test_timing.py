import time

from workbench.measure.timing import measure_latency


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

    stats = measure_latency(drifting, warmup=0, window_calls=5, min_windows=3, max_windows=3)
    assert not stats.stable and stats.window_spread > 1.1
    row = stats.as_row()
    assert row["stable"] is False and "latency_p50_ms" in row
