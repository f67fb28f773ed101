"""The engine study's figures: read off the search, prediction, Triton comparison, served quality and trials; an
absent measurement is None with its reason, never 0."""
from pathlib import Path


def _search():
    from workbench.serving.engine.engine_args import EngineArgs
    from workbench.serving.engine.search import EngineCandidate, EngineSearchResult
    from workbench.serving.engine.workloads import get_workload

    def cand(precision, stage, goodput, rows=()):
        return EngineCandidate(precision, Path("b"), EngineArgs(), stage, goodput_per_s=goodput, rows=list(rows))

    default, int8 = cand("bf16", "default", 3.0), cand("int8", "precision", 4.5)
    confirmed = cand("int8", "confirm", 4.0, [
        {"offered_rate_per_s": 2.0, "meets_slo": True, "own_meets_slo": True, "aiperf_vs_own_ttft_p50_diff_pct": 5.0},
        {"offered_rate_per_s": 3.0, "meets_slo": True, "aiperf_vs_own_ttft_p50_diff_pct": -12.5},
        # at the knee: AIPerf's run kept up, the own client's did not (its queue grew): not a like-for-like reading
        {"offered_rate_per_s": 3.5, "meets_slo": True, "own_meets_slo": False, "aiperf_vs_own_ttft_p50_diff_pct": 30.0},
        {"offered_rate_per_s": 4.0, "meets_slo": False, "aiperf_vs_own_ttft_p50_diff_pct": 95.0},   # overloaded
        {"offered_rate_per_s": 1.0, "meets_slo": True}])
    return EngineSearchResult(700.0, 90.0, get_workload("chat"), [default, int8], idle={"itl_ms_p50": 20.0},
                              confirmed=confirmed, default_confirmed=cand("bf16", "confirm", 2.5))


def test_figures_come_from_the_confirmations_and_absent_ones_say_why():
    from workbench.serving.engine.figures import measured_or_reason, serving_figures

    def broken():
        raise RuntimeError("tritonserver not installed")

    triton = measured_or_reason(broken)
    assert triton == {"error": "RuntimeError: tritonserver not installed"}
    prediction = {"winner": {"predicted_goodput_per_s": 4.4, "predicted_vs_served_goodput_error_pct": 10.0},
                  "default": {"error": "no idle latency"}}
    trials = {"prefix": {"prefix_cache_ttft_ratio": 0.23, "prefix_trial_rows": [1, 2]},
              "workload_rows": [{"workload": "long-prompt", "ttft_ms_p50": 80.0, "extra": 1}]}
    f = serving_figures(_search(), prediction, triton, {"served_ppl_diff_pct": 0.004}, trials)
    assert f["goodput_ratio_best_vs_default"] == 1.6          # confirmation vs confirmation, not the search climbs
    assert f["goodput_ratio_best_vs_default_at_least"] is None   # only where the default passed at no rate
    assert f["goodput_best_rps"] == 4.0 and f["goodput_best_search_rps"] == 4.5
    assert f["goodput_vllm_default_bf16_rps"] == 3.0 and f["goodput_vllm_default_bf16_confirmed_rps"] == 2.5
    # the largest disagreement where the engine kept up in both clients' runs, sign kept; the knee and the overloaded
    # point are listed, not the headline
    assert f["aiperf_vs_own_ttft_p50_diff_pct"] == -12.5
    assert [(d["offered_rate_per_s"], d["own_meets_slo"], d["diff_pct"])
            for d in f["aiperf_vs_own_ttft_p50_diff_pct_all"]] == [
        (2.0, True, 5.0), (3.0, None, -12.5), (3.5, False, 30.0), (4.0, None, 95.0)]
    assert f["engine_vs_triton_python_goodput"] is None and f["triton_python_goodput_rps"] is None
    assert f["not_measured"] == {"triton_python": triton["error"], "prediction_default": "no idle latency"}
    assert f["predicted_goodput_vllm_default_bf16_rps"] is None and f["predicted_goodput_rps"] == 4.4
    assert f["prefix_trial"] == {"prefix_cache_ttft_ratio": 0.23} and f["prefix_cache_ttft_ratio_under_load"] == 0.23
    assert f["workloads"][0]["ttft_ms_p50"] == 80.0 and "extra" not in f["workloads"][0]


def test_a_triton_path_with_goodput_gives_a_finite_ratio():
    from workbench.serving.engine.figures import serving_figures

    f = serving_figures(_search(), {}, {"goodput_per_s": 0.5, "tpot_ms_p50": 300.0}, {}, {})
    assert f["engine_vs_triton_python_goodput"] == 5.0 and f["triton_python_vs_engine_idle_tpot"] == 15.0
    assert f["engine_bundle_vs_triton_python_goodput_at_least"] is None   # a finite ratio needs no bound
    assert f["served_ppl_diff_pct"] is None and f["not_measured"] == {}


def test_a_triton_path_missing_near_idle_bounds_the_bundles_ratio_from_below():
    from workbench.serving.engine.figures import serving_figures

    missed = {"goodput_per_s": 0.0, "offered_rate_per_s": 0.08, "tpot_ms_p50": 300.0}
    f = serving_figures(_search(), {}, missed, {}, {})
    assert f["engine_vs_triton_python_goodput"] is None              # no finite ratio to a goodput of 0
    assert f["engine_bundle_vs_triton_python_goodput_at_least"] == 50.0   # the confirmed 4.0/s over 0.08/s
