import json

import pytest

from workbench.results import ResultsTable, pareto_front


def test_rows_are_saved_as_they_are_appended(tmp_path):
    table = ResultsTable.for_study("s", root=tmp_path, environment={"cpu": "x"})
    table.append({"variant": "a", "latency_p50_ms": 2.0, "quality": 0.8})
    # A second process (or a crash) sees the row already on disk.
    reloaded = ResultsTable.load(tmp_path / "s")
    assert [r["variant"] for r in reloaded] == ["a"]
    assert json.loads((tmp_path / "s" / "environment.json").read_text()) == {"cpu": "x"}
    table.append({"variant": "b", "latency_p50_ms": 1.0, "quality": 0.7})
    assert len(ResultsTable.for_study("s", root=tmp_path)) == 2


def test_a_row_cut_off_by_a_crash_is_dropped_but_corruption_elsewhere_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"variant": "a"}\n{"variant": "b", "lat')
    assert len(ResultsTable.load(path)) == 1
    path.write_text('{"variant": "a"\n{"variant": "b"}\n')
    with pytest.raises(ValueError, match="corrupt"):
        ResultsTable.load(path)
    with pytest.raises(FileNotFoundError, match="workbench measure"):
        ResultsTable.load(tmp_path / "missing")


def test_pareto_front_accuracy_and_perplexity():
    rows = [{"v": "slow-good", "latency_p50_ms": 10, "quality": 0.9},
            {"v": "fast-bad", "latency_p50_ms": 1, "quality": 0.6},
            {"v": "dominated", "latency_p50_ms": 12, "quality": 0.85},
            {"v": "mid", "latency_p50_ms": 5, "quality": 0.8},
            {"v": "failed", "latency_p50_ms": 0.1, "quality": 0.99, "failed": True},
            {"v": "no-quality", "latency_p50_ms": 0.5}]
    assert [r["v"] for r in pareto_front(rows)] == ["fast-bad", "mid", "slow-good"]
    ppl = [{"v": "a", "latency_p50_ms": 1, "quality": 30.0, "higher_is_better": False},
           {"v": "b", "latency_p50_ms": 2, "quality": 20.0, "higher_is_better": False},
           {"v": "c", "latency_p50_ms": 3, "quality": 25.0, "higher_is_better": False}]
    assert [r["v"] for r in pareto_front(ppl)] == ["a", "b"]


def test_to_text_lists_rows():
    text = ResultsTable(rows=[{"variant": "a", "latency_p50_ms": 1.23456}]).to_text()
    assert "variant" in text and "1.235" in text
