"""Find the best in the quickstart panel, against a fake workbench.optimize: progress with ETA, a live Pareto redrawn
on each row, the decision summary and the report at the end; and a one-line message when optimize is missing."""
import json
import sys
import types
from pathlib import Path

import pytest

from workbench.ui.optimize_view import OptimizeView, decision_summary
from workbench.ui.panel import WorkbenchPanel

DECISION = json.loads((Path(__file__).parent / "fixtures" / "decision.json").read_text())

EVENTS = [{"type": "stage", "stage": "screen", "eta_s": 300.0, "elapsed_s": 0.0, "budget_s": 600.0, "candidates": 6},
          {"type": "row", "row": {"arm": "torch-fp32", "stage": "screen", "batch_size": 1, "p50_ms": 8.0},
           "elapsed_s": 20.0, "eta_s": 280.0},
          {"type": "stage", "stage": "quality", "eta_s": 200.0, "elapsed_s": 40.0, "budget_s": 600.0, "candidates": 3},
          {"type": "row", "row": {"arm": "ov-int8-static", "stage": "quality", "metric": "accuracy", "drop_pts": 0.4},
           "elapsed_s": 100.0, "eta_s": 150.0},
          {"type": "stage", "stage": "sweep", "eta_s": 120.0, "elapsed_s": 130.0, "budget_s": 600.0, "candidates": 2},
          {"type": "row", "row": {"arm": "ov-int8-static", "stage": "sweep", "batch_size": 1, "latency_p99_ms": 6.5,
                                  "usd_per_1m": {"c7i.large": 0.95}}, "elapsed_s": 160.0, "eta_s": 90.0},
          {"type": "row", "row": {"arm": "ov-int8-static", "stage": "sweep", "batch_size": 8, "latency_p99_ms": 31.0},
           "elapsed_s": 200.0, "eta_s": 40.0},
          {"type": "row", "row": {"arm": "ov-fp32", "stage": "sweep", "batch_size": 4, "latency_p99_ms": 44.0,
                                  "quality_drop": 0.0}, "elapsed_s": 230.0, "eta_s": 10.0},
          {"type": "done", "decision": DECISION}]


def _drawn(figure) -> list[tuple]:
    return sorted((t.name, x, y) for t in figure.data for x, y in zip(t.x, t.y))


def test_view_follows_the_events_progress_eta_and_live_pareto():
    view = OptimizeView(slo_ms=50.0, percentile="p99", max_drop=1.0, budget_s=600.0)
    assert view.plot.output.layout.display == "none"                   # hidden until a search reports
    seen = []
    for event in EVENTS[:-1]:
        view.handle(event)
        seen.append((view.progress.value, view.label.value, _drawn(view.figure)))
    assert view.plot.output.layout.display is None
    fractions = [s[0] for s in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0
    assert fractions[1] == pytest.approx(20 / 300) and fractions[-1] == pytest.approx(230 / 240)
    assert seen[2][1] == "stage quality · 3 candidates · 1 rows · 0:40 elapsed · ETA 3:20 · budget 10:00"
    # a screen p50 is not a p99, and a sweep row is drawn only once its arm's drop is known (from the quality row)
    assert seen[1][2] == [] and seen[3][2] == []
    assert seen[5][2] == [("ov-int8-static", 6.5, 0.4)]
    assert seen[7][2] == [("ov-fp32", 44.0, 0.0), ("ov-int8-static", 6.5, 0.4), ("ov-int8-static", 31.0, 0.4)]
    assert "3 of 5 rows drawn" in view.figure.layout.title.text
    assert view.figure.layout.xaxis.title.text == "tail latency at p99 (ms)"
    view.handle(EVENTS[-1])
    assert view.progress.value == 1.0 and view.progress.bar_style == "success"
    assert "ov-int8-static at batch 8, confirmed 2.6x faster" in view.summary.value


def test_view_without_eta_uses_the_budget_and_summary_of_an_incomplete_run():
    view = OptimizeView(budget_s=400.0)
    view.handle({"type": "row", "row": {"arm": "a"}, "elapsed_s": 100.0, "eta_s": None})
    assert view.progress.value == pytest.approx(0.25) and "ETA —" in view.label.value
    lm = json.loads((Path(__file__).parent / "fixtures" / "decision_lm.json").read_text())
    text = decision_summary(lm)
    assert "1.8x in selection (not confirmed)" in text and "$1.95 on c7i.large (USD per 1M output tokens)" in text
    assert text.endswith("Incomplete run: resume with " + lm["resume"])
    assert decision_summary({**lm, "pick": None, "complete": True}).startswith("No pick: no arm met the SLO")


def _fake_optimize(panel, snapshots, calls):
    """A workbench.optimize module whose optimize emits EVENTS, saving the study as the real one would."""
    from workbench.util.files import artifacts_root

    def optimize(task, on_event=None, study=None, **kwargs):
        calls.append({"task": task, "study": study, **kwargs})
        folder = artifacts_root() / study
        folder.mkdir(parents=True)
        rows = []
        for event in EVENTS:
            if event["type"] == "row":
                rows.append({"scenario": f"optimize-{event['row']['stage']}", **event["row"]})
            on_event(event)
            view = panel.finder.view
            snapshots.append((view.progress.value, _drawn(view.figure)))
        (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        (folder / "decision.json").write_text(json.dumps(DECISION))
        return types.SimpleNamespace(decision=DECISION, rows=rows, study_dir=folder, bundle=None)

    module = types.ModuleType("workbench.optimize")
    module.optimize = optimize
    return module


def test_find_the_best_button_runs_optimize_with_the_boxes_and_shows_the_decision(monkeypatch):
    panel = WorkbenchPanel(study="fb", options=[])
    snapshots, calls = [], []
    monkeypatch.setitem(sys.modules, "workbench.optimize", _fake_optimize(panel, snapshots, calls))
    panel.finder.slo_ms.value, panel.finder.max_drop.value, panel.finder.budget_min.value = 40.0, 0.5, 10.0
    panel.finder.button.click()
    assert calls == [{"task": "text-classification", "study": "fb-optimize", "model": None, "data": None,
                      "slo_ms": 40.0, "percentile": "p99", "max_drop": 0.5, "budget_s": 600.0, "device": "cpu",
                      "instances": ("c7i.large",), "progress": False}]
    progress = [p for p, _d in snapshots]
    assert progress == sorted(progress) and progress[0] == 0.0 and progress[-1] == 1.0
    drawn = [d for _p, d in snapshots]
    assert drawn[0] == [] and len(drawn[-2]) == 3 and sorted({len(d) for d in drawn}) == [0, 1, 2, 3]   # as rows came
    last = panel.messages[-1]
    assert last.startswith("✓ Find the best: Pick: ov-int8-static at batch 8, confirmed 2.6x faster")
    report = Path(last.split("; report ", 1)[1])
    assert report.name == "report.html" and "<h2>Decision</h2>" in report.read_text()
    assert str(report) in panel.finder.view.summary.value
    assert not panel.finder.button.disabled


def test_find_the_best_says_in_one_line_when_optimize_is_missing_or_fails(monkeypatch):
    panel = WorkbenchPanel(study="fb", options=[])
    monkeypatch.setitem(sys.modules, "workbench.optimize", None)          # import fails as if not installed
    assert panel.find_best() is None
    assert panel.messages[-1].startswith("✗ Find the best: workbench.optimize is not available in this install (")
    failing = types.ModuleType("workbench.optimize")

    def optimize(*args, **kwargs):
        raise ValueError("budget 30 s is too small for even the baseline: it needs ~95 s")

    failing.optimize = optimize
    monkeypatch.setitem(sys.modules, "workbench.optimize", failing)
    assert panel.find_best() is None
    assert panel.messages[-1] == ("✗ Find the best: ValueError: budget 30 s is too small for even the baseline: "
                                  "it needs ~95 s")
    assert not panel.finder.button.disabled


def test_summary_shows_absent_figures_as_absent():
    pick = {**DECISION["pick"], "confirmed_speedup": None, "selection_speedup": None, "tail_ms": None,
            "quality": {"metric": "accuracy", "drop": None, "ci": None}, "usd_per_1m": None}
    text = decision_summary({**DECISION, "pick": pick})
    assert text == ("Pick: ov-int8-static at batch 8, —x in selection (not confirmed); p99 — ms (SLO 50 ms), drop —; "
                    "cost not measured (USD per 1M requests)")
    assert "drop 0.4 [-0.2, 1.1]" in decision_summary(DECISION)
