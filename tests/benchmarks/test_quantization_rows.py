"""benchmarks/quantization.py on a few arms: the headline is the confirmed ratio, chosen by the one rule, and its
rows carry every percentile with its call count."""
import pytest

pytestmark = pytest.mark.integration


def test_benchmark_reports_the_confirmed_ratio_of_an_eligible_winner(benchmark_module, tmp_path, monkeypatch):
    import json

    import torch

    from workbench.measure.interleaved import MIN_ROUNDS

    bench = benchmark_module("quantization")
    # main sets the process's thread count and WORKBENCH_THREADS for the whole script: both come back after the test
    monkeypatch.setenv("WORKBENCH_THREADS", "2")   # setenv records the old state (unset), so it is restored
    before = torch.get_num_threads()
    try:
        out = bench.main(["--arms", "ov-fp32", "ort-int8-dynamic", "--rounds", "2", "--seconds", "0.05",
                          "--eval-limit", "40", "--calib", "16", "--skip-random-bert", "--out", str(tmp_path)])
    finally:
        torch.set_num_threads(before)
    arms = out["classifier"]
    assert set(arms) == {"torch-fp32", "ov-fp32", "ort-int8-dynamic"}
    assert out["best_speedup"] == out["confirmed_speedup"] > 0 and out["selection_speedup"] > 0
    best = arms[out["best_variant"]]
    assert best["eligible"] and out["pick_checked"]
    if out["best_variant"] != "torch-fp32":
        assert best["val_accuracy_drop_ci_pts"][1] <= bench.TOLERANCE_PTS      # the one rule
        assert out["selection_speedup"] == best["speedup_b8"]
    # Each batch size is its own interleaved run on a time budget, so b8 and b1 may run different numbers of rounds;
    # within one run every arm gets the same turns of 3 calls each.
    for batch in (8, 1):
        calls = {fig[f"n_calls_b{batch}"] for fig in arms.values()}
        assert len(calls) == 1 and calls.pop() >= MIN_ROUNDS * 3
    for name, fig in arms.items():
        assert fig["eligible"] == (name == "torch-fp32" or fig["val_accuracy_drop_ci_pts"][1] <= bench.TOLERANCE_PTS)
        assert fig["p50_ms_b1"] > 0
    assert out["skipped"]["torch-compile-fp32"].startswith("skipped in this run")
    assert set(out["isa"]) >= {"avx2", "avx512", "avx512_bf16", "vnni", "amx_bf16", "amx_int8"}
    assert len(out["loadavg_1min"]) == 2
    rows = [json.loads(line) for line in open(out["results"])]
    assert {(r["arm"], r["batch_size"]) for r in rows} == {(a, b) for a in arms for b in (8, 1)}
    for r in rows:
        assert r["n_calls"] == arms[r["arm"]][f"n_calls_b{r['batch_size']}"] and r["latency_p50_ms"] > 0
        assert r["latency_p99_ms"] is None and "latency_p99_note" in r
        assert r["timing"] == "interleaved" and r["threads"] == 2 and r["throughput_per_s"] > 0
