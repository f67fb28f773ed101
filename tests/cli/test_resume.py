"""Re-running a sweep or a measure skips the points the study already holds (same variant, point, environment),
unless asked to redo; an interrupted run resumes; re-measured points say so. A tiny module task keeps it fast."""
import json

import pytest
import torch

from workbench.cli import main
from workbench.measure.batching import SweepConfig, sweep_batching
from workbench.results import ResultsTable
from workbench.tasks import from_module

GRID = dict(point_seconds=0.05, timeout_s=5.0, percentile="p50")


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def tiny(monkeypatch):
    """A tiny module task; its timings count as stable (an unstable saved timing is re-measured on purpose, which
    a loaded test machine would otherwise trigger at random: these tests are about resuming)."""
    import dataclasses

    import workbench.measure as measure
    import workbench.measure.batching as batching

    real = batching.measure_latency

    def steady(*args, **kwargs):
        return dataclasses.replace(real(*args, **kwargs), stable=True)

    monkeypatch.setattr(batching, "measure_latency", steady)
    monkeypatch.setattr(measure, "measure_latency", steady)
    torch.manual_seed(0)
    return from_module(Tiny(), lambda variant: 0.5, {"x": torch.randn(4, 16)}, name="tiny")


def test_an_unstable_saved_timing_is_measured_again(tiny, monkeypatch):
    import dataclasses

    import workbench.measure.batching as batching

    steady = batching.measure_latency
    monkeypatch.setattr(batching, "measure_latency", lambda *a, **k: dataclasses.replace(steady(*a, **k), stable=False))
    table = ResultsTable.for_study("unsteady", environment={"cpu": "here"})
    config = SweepConfig(batch_sizes=(1, 2), **GRID)
    sweep_batching(tiny, tiny.baseline(), config, table, progress=False)
    monkeypatch.setattr(batching, "measure_latency", steady)
    again = sweep_batching(tiny, tiny.baseline(), config, table, progress=False)
    assert len(_saved(table)) == 4 and [(r["stable"], r["remeasure"]) for r in again] == [(True, 1), (True, 1)]
    sweep_batching(tiny, tiny.baseline(), config, table, progress=False)
    assert len(_saved(table)) == 4                      # now stable: kept


@pytest.fixture
def cli_task(tiny, monkeypatch):
    """The CLI verbs run on the tiny task instead of loading a demo model."""
    monkeypatch.setattr("workbench.tasks.get_task", lambda *args, **kwargs: tiny)
    return tiny


def _saved(table) -> list[dict]:
    return [json.loads(line) for line in table.path.read_text().splitlines()]


def test_sweep_batching_resumes_and_redoes_only_when_asked(tiny):
    table = ResultsTable.for_study("sweep", environment={"cpu": "here"})
    variant = tiny.baseline()
    first = sweep_batching(tiny, variant, SweepConfig(batch_sizes=(1, 2), **GRID), table, progress=False)
    assert [r["batch_size"] for r in _saved(table)] == [1, 2]
    # a larger grid (or a run that was interrupted after batch 2) measures only what is missing
    rows = sweep_batching(tiny, variant, SweepConfig(batch_sizes=(1, 2, 4), **GRID), table, progress=False)
    saved = _saved(table)
    assert [r["batch_size"] for r in saved] == [1, 2, 4]
    assert rows[:2] == first and rows[2] == table.rows[-1]
    # same grid again: nothing new, no duplicates
    sweep_batching(tiny, variant, SweepConfig(batch_sizes=(1, 2, 4), **GRID), table, progress=False)
    assert len(_saved(table)) == 3
    # redo: measured again, and each new row says which point it re-measured
    again = sweep_batching(tiny, variant, SweepConfig(batch_sizes=(1, 2), **GRID), table, progress=False, redo=True)
    assert [r["batch_size"] for r in _saved(table)] == [1, 2, 4, 1, 2]
    assert [r["remeasure"] for r in again] == [1, 1]
    assert [r["batch_size"] for r in table.latest()] == [4, 1, 2]
    # another machine has measured nothing yet: it measures every point
    elsewhere = ResultsTable.for_study("sweep", environment={"cpu": "elsewhere"})
    sweep_batching(tiny, variant, SweepConfig(batch_sizes=(1,), **GRID), elsewhere, progress=False)
    assert len(_saved(table)) == 6 and "remeasure" not in _saved(table)[-1]


def test_cli_sweep_skips_points_already_in_the_study_unless_redo(cli_task, capsys):
    args = ["sweep", "--task", "text-classification", "--study", "cli-sweep", "--batch-sizes", "1", "2",
            "--point-seconds", "0.05", "--threads", "1"]
    assert main(args) == 0
    path = ResultsTable.for_study("cli-sweep", environment=False).path
    assert len(path.read_text().splitlines()) == 2
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 of 2 points were already measured" in out and len(path.read_text().splitlines()) == 2
    assert main(args + ["--redo"]) == 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 4 and [r.get("remeasure") for r in rows[2:]] == [1, 1]


def test_cli_measure_resumes_an_interrupted_run_and_redoes_only_when_asked(cli_task, capsys):
    base = ["measure", "--task", "text-classification", "--study", "cli-measure", "--time-budget", "0.05",
            "--threads", "1", "--batch-size"]
    assert main(base + ["1"]) == 0                      # as if interrupted after the first point
    path = ResultsTable.for_study("cli-measure", environment=False).path
    assert [json.loads(line)["batch_size"] for line in path.read_text().splitlines()] == [1]
    capsys.readouterr()
    assert main(base + ["1", "4"]) == 0                 # resumes: only batch 4 is measured
    out = capsys.readouterr().out
    assert "1 of 2 points were already measured" in out
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["batch_size"] for r in rows] == [1, 4] and all(r["environment_id"] for r in rows)
    assert main(base + ["1", "4", "--redo"]) == 0
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["batch_size"], r.get("remeasure")) for r in rows] == [(1, None), (4, None), (1, 1), (4, 1)]
