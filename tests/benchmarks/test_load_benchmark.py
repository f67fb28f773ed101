"""benchmarks/load.py in small mode: the M/D/1 and stall checks and the search on the demo classifier bundle, one
JSON line."""
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # starts benchmarks/load.py with Triton

@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("load")


@pytest.mark.integration
def test_small_run_prints_the_headline_json_last(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path / "artifacts"))
    result = bench.main(["--skip-int8", "--budget-s", "20", "--out", str(tmp_path / "work")])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(result, default=str))
    for key in ("goodput_default_rps", "goodput_searched_rps", "goodput_best_baseline_rps", "md1_mean_error_pct",
                "md1_p99_error_pct", "co_stall_detected", "slo_ms", "percentile", "searched_over_best_baseline"):
        assert key in result
    assert result["percentile"] == "p99" and result["slo_ms"] > 0
    assert set(result["md1"]) == {"0.5", "0.8", "0.9"} and 0 <= result["md1_mean_error_pct"] < 100
    for fig in result["md1"].values():     # the prediction uses Triton's own S: above S
        assert fig["predicted_mean_ms"] > fig["service_ms"] > 0 and fig["predicted_p99_ms"] > fig["service_ms"]
        assert fig["client_cpus"] and fig["server_cpus"] and fig["client_cpu_share"] is not None
    assert isinstance(result["co_stall_detected"], bool) and result["stall"]["scheduled_during_stall"] > 0
    fp32 = result["bundles"]["fp32"]
    # exported, no-batching and the coarse grid: tried, or listed as left out by the time budget (never dropped)
    assert fp32["candidates"] >= 1 and fp32["candidates"] + fp32["skipped"] >= 4
    points = [p for curve in fp32["curves"].values() for p in curve]
    assert points and all(p["client_cpu_share"] is not None and p["slo_outcome"] for p in points)
    if fp32["goodput_best_baseline_rps"] is not None:   # the best baseline: the better of exported / no batching
        assert fp32["goodput_best_baseline_rps"] == max(g for g in (fp32["goodput_exported_rps"],
                                                                   fp32["goodput_no_batching_rps"]) if g)
    if fp32["goodput_search_winner_rps"] is not None:   # a winner is always confirmed by a fresh climb
        assert result["winner_confirmed"]
    rows = [json.loads(line) for line in Path(result["results"]).read_text().splitlines()]
    assert {r["scenario"] for r in rows} == {"load", "load-search"}
    assert sum(r["scenario"] == "load-search" for r in rows) == fp32["candidates"] + result["winner_confirmed"]
