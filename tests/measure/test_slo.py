"""SLO reading: largest batch under a tail-latency target, the knee, and 'no feasible point'."""
import pytest

from workbench.measure.slo import knee, slo_point, tail_latency_ms


def _row(batch, p50, p90, p99, vid="v1", seq=32):
    return {"scenario": "batching", "variant_id": vid, "seq_len": seq, "batch_size": batch, "failed": False,
            "latency_p50_ms": p50, "latency_p90_ms": p90, "latency_p99_ms": p99, "throughput_per_s": batch * 1e3 / p50}


ROWS = [_row(1, 2.0, 2.5, 3.0), _row(2, 3.0, 3.5, 4.0), _row(4, 5.0, 6.0, 8.0), _row(8, 9.0, 11.0, 14.0),
        _row(16, 17.5, 20.0, 26.0), {"scenario": "batching", "variant_id": "v1", "seq_len": 32, "batch_size": 32,
                                     "failed": True, "error": "MemoryError"}]


def test_largest_batch_meeting_the_target():
    slo = slo_point(ROWS, target_ms=15, percentile="p99")
    assert slo.feasible and slo.batch_size == 8 and slo.latency_ms == 14.0
    assert slo.throughput_per_s == pytest.approx(8e3 / 9.0)


def test_p95_is_read_between_p90_and_p99():
    row = ROWS[3]
    assert row["latency_p90_ms"] < tail_latency_ms(row, "p95") < row["latency_p99_ms"]
    assert slo_point(ROWS, target_ms=13, percentile="p95").batch_size == 8
    assert slo_point(ROWS, target_ms=13, percentile="p99").batch_size == 4


def test_knee_is_the_smallest_batch_near_peak_throughput():
    k = knee([r for r in ROWS if not r.get("failed")], 0.9)
    assert k["batch_size"] == 8  # 889/s vs best 914/s at batch 16


def test_no_feasible_point_is_reported_not_guessed():
    slo = slo_point(ROWS, target_ms=1.0)
    assert not slo.feasible and slo.batch_size is None
    assert "no feasible point" in slo.reason and "batch 1" in slo.reason


def test_bad_slo_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="positive"):
        slo_point(ROWS, target_ms=0)
    with pytest.raises(ValueError, match="percentile"):
        slo_point(ROWS, target_ms=5, percentile="p42")
    with pytest.raises(ValueError, match="workbench sweep"):
        slo_point([], target_ms=5)
    with pytest.raises(ValueError, match="several sweep lines"):
        slo_point(ROWS + [_row(1, 2.0, 2.5, 3.0, seq=64)], target_ms=5)
