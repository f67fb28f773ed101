"""SLO reading: largest batch under a tail-latency target, the knee, and 'no feasible point'."""
import re

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


def test_p95_comes_from_the_samples_never_between_p90_and_p99():
    # Was: p95 interpolated between p90 and p99 (11 + (14 - 11) * 5/9 = 12.67 ms at batch 8). Now p95 is the row's own
    # measured column; a row without one (older rows) has no p95, and a p95 target is read at p90 and says so.
    measured = {**ROWS[3], "latency_p95_ms": 13.9}
    assert tail_latency_ms(measured, "p95") == 13.9
    assert tail_latency_ms(ROWS[3], "p95") is None
    slo = slo_point(ROWS, target_ms=13, percentile="p95")
    assert slo.batch_size == 8 and slo.percentile_used == "p90" and slo.latency_ms == 11.0
    assert "p95 needs >= 40 timed calls per point" in slo.reason and "read p90 instead" in slo.reason
    assert slo_point(ROWS, target_ms=13, percentile="p99").batch_size == 4
    with_p95 = [{**r, "latency_p95_ms": r["latency_p99_ms"] - 0.5} for r in ROWS if not r.get("failed")]
    slo = slo_point(with_p95, target_ms=13, percentile="p95")   # batch 8: p95 13.5 > 13 -> batch 4 (p95 7.5)
    assert slo.percentile_used == "p95" and slo.batch_size == 4 and slo.latency_ms == 7.5 and not slo.notes


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


def test_unstable_points_are_not_used_and_the_reading_says_so():
    rows = [dict(r, stable=(r["batch_size"] != 8)) for r in ROWS]   # batch 8 never settled
    slo = slo_point(rows, target_ms=15, percentile="p99")
    assert slo.batch_size == 4 and slo.latency_ms == 8.0   # was batch 8 (p99 14 ms, an unstable point)
    assert any(n.startswith("skipped batch 8: unstable timing") for n in slo.notes) and "skipped batch 8" in slo.reason
    with pytest.raises(ValueError, match=re.escape("every swept point is unstable (stable=False)")):
        slo_point([dict(r, stable=False) for r in ROWS], target_ms=15)


def test_p99_without_enough_calls_reads_the_highest_percentile_that_has_them():
    # 60 calls per point: p95 (needs 40) is measured, p99 (needs 200) is not; the row holds None for it.
    rows = [dict(r, n_calls=60, latency_p95_ms=r["latency_p90_ms"] + 1.0, latency_p99_ms=None,
                 latency_p99_note="n=60 < 200") for r in ROWS if not r.get("failed")]
    slo = slo_point(rows, target_ms=15, percentile="p99")
    assert slo.percentile == "p99" and slo.percentile_used == "p95"
    assert slo.batch_size == 8 and slo.latency_ms == 12.0   # p95 of batch 8 = 11 + 1
    assert slo.reason.startswith("p99 needs >= 200 timed calls per point (batch 1 n=60, batch 2 n=60")
    # a stored p99 from too few calls (older rows) is a maximum, not a p99: it is not read either
    stale = [dict(r, n_calls=30) for r in ROWS if not r.get("failed")]
    assert slo_point(stale, target_ms=15, percentile="p99").percentile_used == "p90"
