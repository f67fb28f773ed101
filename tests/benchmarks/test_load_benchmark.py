"""benchmarks/load.py in small mode: the M/D/1 check and the search on the demo classifier bundle, one JSON line."""
import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # starts benchmarks/load.py with Triton


@pytest.fixture(scope="module")
def bench(benchmark_module):
    return benchmark_module("load")


def test_small_run_prints_the_headline_json_last(bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path / "artifacts"))
    result = bench.main(["--skip-int8", "--budget-s", "20", "--out", str(tmp_path / "work")])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(result, default=str))
    for key in ("goodput_default_rps", "goodput_searched_rps", "md1_mean_error_pct", "slo_ms", "percentile"):
        assert key in result
    assert result["percentile"] == "p99" and result["slo_ms"] > 0
    assert set(result["md1"]) == {"0.5", "0.8"} and 0 <= result["md1_mean_error_pct"] < 100
    for fig in result["md1"].values():     # the prediction uses Triton's own S: above S, growing with rho
        assert fig["predicted_ms"] > fig["service_ms"] > 0
    assert result["md1"]["0.8"]["predicted_ms"] > result["md1"]["0.5"]["predicted_ms"]
    fp32 = result["bundles"]["fp32"]
    # exported, no-batching and the coarse grid: tried, or listed as left out by the time budget (never dropped)
    assert fp32["candidates"] >= 1 and fp32["candidates"] + fp32["skipped"] >= 4
    if fp32["goodput_exported_rps"] is not None:       # the winner is the best of all, the exported config included
        assert fp32["goodput_searched_rps"] >= fp32["goodput_exported_rps"]
    rows = [json.loads(line) for line in Path(result["results"]).read_text().splitlines()]
    assert {r["scenario"] for r in rows} == {"load", "load-search"}
    assert sum(r["scenario"] == "load-search" for r in rows) == fp32["candidates"]
