"""A load run's figures from a search result: goodputs, the confirmed / best-baseline ratio, what bound each climb,
curves, the LM sweep's points and the benchmark headline (built on real SearchResult / Candidate objects)."""
import json
from types import SimpleNamespace

import pytest

from workbench.serving.bundle.serving_config import ServingConfig
from workbench.serving.load.config_search import Candidate, SearchResult
from workbench.serving.load.summary import CURVE_KEYS, binding, climb_curve, headline, lm_summary, search_summary


def point(rate, outcome, share=None, **extra):
    return {"offered_rate_per_s": rate, "achieved_rate_per_s": rate, "latency_p99_ms": 10.0, "slo_outcome": outcome,
            "client_cpu_share": 0.3, "send_lag_p99_ms": 0.4, "server_exec_share": share, "server_queue_ms": 2.0,
            "server_mean_batch": 1.5, **extra}


def candidate(stage, goodput, rows, instances=1):
    return Candidate(ServingConfig(max_batch_size=4, instance_count=instances), stage, goodput_per_s=goodput,
                     knee_per_s=goodput and goodput * 1.2, p99_at_goodput_ms=goodput and 9.0, rows=rows)


@pytest.fixture
def result():
    exported = candidate("exported", 20.0, [point(10, "pass", 0.4), point(20, "pass", 0.8), point(40, "miss", 0.9)])
    no_batching = candidate("no-batching", 25.0, [point(25, "pass", 0.5), point(50, "miss", 0.6)])
    coarse = candidate("coarse", 60.0, [point(60, "pass", 1.0), point(120, "client-limited", 1.1)], instances=2)
    res = SearchResult("b", "clf", 50.0, 0.99, 30.0, [exported, no_batching, coarse], skipped=["x (fine)"])
    res.confirmed = candidate("confirmed", 50.0, [point(50, "pass", 1.0), point(100, "miss", 1.8)], instances=2)
    return res


def test_binding_reads_the_highest_failing_point(result):
    exported, no_batching, coarse = result.candidates
    assert binding(exported).startswith("server (model executing 0.90 of the time over 1 instance(s) at 40/s")
    # 0.6 of one instance's time is not a busy server: the queue / the SLO ended the climb
    assert binding(no_batching).startswith("queue/latency (model executing 0.6 of the time, queue 2.0 ms, batch 1.5")
    assert binding(coarse) == "client (CPU share 0.3, send lag p99 0.4 ms)"
    assert binding(result.confirmed).startswith("server (model executing 1.80 of the time over 2 instance(s)")
    everything_passed = candidate("exported", 20.0, [point(10, "pass", 0.1), point(20, "pass", 0.2)])
    assert "at 20/s" in binding(everything_passed)   # no failure: the last point says what was reached
    assert binding(None) is None and binding(candidate("exported", None, [])) is None


def test_search_summary_keeps_every_figure_and_the_ratio_against_the_better_baseline(result):
    s = search_summary(result)
    assert (s["goodput_exported_rps"], s["goodput_no_batching_rps"], s["goodput_search_winner_rps"],
            s["goodput_confirmed_rps"]) == (20.0, 25.0, 60.0, 50.0)
    assert s["best_baseline"] == "no-batching" and s["goodput_best_baseline_rps"] == 25.0
    assert s["searched_over_best_baseline"] == 2.0 == result.headline_ratio   # confirmed 50 / no batching 25
    assert s["searched_config"] == result.winner.config.label() and s["knee_rps"] == 60.0
    assert s["candidates"] == 3 and s["skipped"] == 1 and s["capacity_sync_rps"] == 30.0
    assert set(s["binding"]) == {"exported", "no_batching", "confirmed"}
    assert len(s["curves"]) == 4 and all(set(p) == set(CURVE_KEYS) for c in s["curves"].values() for p in c)
    assert json.loads(json.dumps(s)) == s   # JSON-ready as it is


def test_search_summary_without_a_winner_leaves_figures_absent():
    res = SearchResult("b", "clf", 50.0, 0.99, 30.0, [candidate("exported", None, [point(10, "miss", 0.2)])])
    s = search_summary(res)
    assert s["goodput_exported_rps"] is None and s["goodput_confirmed_rps"] is None
    assert s["searched_over_best_baseline"] is None and s["searched_config"] is None and s["knee_rps"] is None
    assert climb_curve(None) == []


def test_headline_takes_the_fp32_bundle_the_highest_rate_and_mean_abs_md1_errors(result):
    md1 = {"0.5": {"mean_error_pct": -2.0, "p99_error_pct": 4.0}, "0.9": {"mean_error_pct": 3.0,
                                                                          "p99_error_pct": -8.0}}
    stall = {"detected": True, "scheduled_during_stall": 40}
    h = headline({"fp32": search_summary(result)}, md1, stall)
    assert h["goodput_default_rps"] == 20.0 and h["goodput_searched_rps"] == 50.0 and h["winner_confirmed"]
    assert h["highest_rate_rps"] == 120 and h["client_cpu_share_at_highest_rate"] == 0.3
    assert h["md1_mean_error_pct"] == 2.5 and h["md1_p99_error_pct"] == 6.0
    assert h["co_stall_detected"] is True and h["stall"] is stall
    skipped = headline({"fp32": search_summary(result)}, {}, None)   # --skip-md1: not measured, so None (not 0)
    assert skipped["md1_mean_error_pct"] is None and skipped["co_stall_detected"] is None


def test_lm_summary_keeps_the_sweep_points():
    rows = [{"offered_rate_per_s": 1.0, "ttft_p50_ms": 30.0, "slo_outcome": "pass", "other": 1}]
    res = SimpleNamespace(new_tokens=16, slo_ms=2000.0, goodput_per_s=1.0, slo_percentile="p90", rows=rows)
    s = lm_summary(res)
    assert s["new_tokens"] == 16 and s["slo_percentile"] == "p90" and s["goodput_rps"] == 1.0
    assert s["points"][0]["ttft_p50_ms"] == 30.0 and "other" not in s["points"][0]
    assert s["points"][0]["tpot_p50_ms"] is None   # absent from the row: None, never 0
