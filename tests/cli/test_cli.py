import json
import subprocess
import sys

import pytest


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow  # integration-like: the CLI end to end (export-free measure, evaluation, timing budget)
def test_measure_writes_a_results_table(tmp_path, monkeypatch):
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "measure", "--task", "text-classification",
                             "--batch-size", "1", "4", "--eval-limit", "64", "--study", "cli-test",
                             "--time-budget", "2"],
                            capture_output=True, text=True, env={**__import__("os").environ,
                                                                  "WORKBENCH_ARTIFACTS": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    path = tmp_path / "cli-test" / "results.jsonl"
    assert f"wrote {path}" in result.stdout
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["batch_size"] for r in rows] == [1, 4]
    first = rows[0]
    for key in ("quality", "quality_ci_low", "quality_ci_high", "latency_p50_ms", "latency_p90_ms", "latency_p99_ms",
                "throughput_per_s", "size_mb", "params", "peak_rss_mb", "variant_id"):
        assert key in first, key
    # every environment the study saw, keyed by id (was one environment.json, overwritten by each run)
    environments = json.loads((tmp_path / "cli-test" / "environments.json").read_text())
    assert {r["environment_id"] for r in rows} <= set(environments)


def test_bad_input_exits_nonzero_with_one_line_reason(tmp_path):
    result = _run("measure", "--task", "text-classification", "--model", str(tmp_path / "nope"), "--data", "x.jsonl")
    assert result.returncode == 2
    assert "does not exist" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_every_verb_has_help():
    result = _run("--help")
    assert result.returncode == 0 and "measure" in result.stdout
