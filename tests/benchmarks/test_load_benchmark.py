"""benchmarks/load.py in small mode: the search on the demo classifier bundle, one JSON line. The M/D/1 and stall checks
are left out here (``--skip-md1``): tests/serving/load/test_md1_run.py runs them on Triton and test_summary.py checks
their headline figures; this test is the script's plumbing around the search."""
import json
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # starts benchmarks/load.py with Triton; times load

@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("load")


@pytest.mark.integration
def test_small_run_prints_the_headline_json_last(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path / "artifacts"))
    # a 5 s budget: the exported config is climbed (it always is), the rest are listed as left out by the budget, and
    # the winner is confirmed by a fresh climb (a 20 s budget also climbed no-batching: 16 s more of CI, same plumbing)
    result = bench.main(["--skip-int8", "--skip-md1", "--budget-s", "5", "--out", str(tmp_path / "work")])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(result, default=str))
    for key in ("goodput_default_rps", "goodput_searched_rps", "goodput_best_baseline_rps", "md1_mean_error_pct",
                "md1_p99_error_pct", "co_stall_detected", "slo_ms", "percentile", "searched_over_best_baseline"):
        assert key in result
    assert result["percentile"] == "p99" and result["slo_ms"] > 0
    # skipped checks are absent, not zero
    assert result["md1"] == {} and result["md1_mean_error_pct"] is None and result["co_stall_detected"] is None
    fp32 = result["bundles"]["fp32"]
    # exported, no-batching and the coarse grid: tried, or listed as left out by the time budget (never dropped)
    assert fp32["candidates"] >= 1 and fp32["candidates"] + fp32["skipped"] >= 4
    points = [p for curve in fp32["curves"].values() for p in curve]
    assert points and all(p["client_cpu_share"] is not None and p["slo_outcome"] for p in points)
    if fp32["goodput_best_baseline_rps"] is not None:   # the best baseline: the better of exported / no batching
        assert fp32["goodput_best_baseline_rps"] == max(g for g in (fp32["goodput_exported_rps"],
                                                                   fp32["goodput_no_batching_rps"]) if g)
    # a winner is always climbed again on a fresh server; whether that climb still met the SLO (winner_confirmed) is
    # a measurement on a noisy 2-core box, so only the climb itself is pinned here
    confirm_climbed = any(label.endswith("(confirm)") for label in fp32["curves"])
    assert confirm_climbed == (fp32["goodput_search_winner_rps"] is not None)
    assert result["winner_confirmed"] == (fp32["goodput_confirmed_rps"] is not None)
    rows = [json.loads(line) for line in Path(result["results"]).read_text().splitlines()]
    assert {r["scenario"] for r in rows} == {"load", "load-search"}
    assert sum(r["scenario"] == "load-search" for r in rows) == fp32["candidates"] + confirm_climbed
