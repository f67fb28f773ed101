"""The distillation panel only calls the package (``arms.distill_study.run``) and reads its rows; its live curve draws
one loss / validation trace pair per training the study runs."""
import pytest

pytest.importorskip("ipywidgets")

from workbench.arms.distill_study import Study  # noqa: E402
from workbench.results import ResultsTable  # noqa: E402
from workbench.tasks import get_task  # noqa: E402
from workbench.ui.distill_panel import DistillPanel  # noqa: E402


def test_panel_runs_the_study_with_its_widgets_and_reads_its_rows(monkeypatch, tmp_path):
    from workbench.arms import distill_study

    calls = []

    def fake_run(task, batch, seq, threads, **kw):
        calls.append(dict(kw, task=task, batch=batch, seq=seq, threads=threads))
        for step in (1, 2, 5):                       # the KD student's training, then the no-KD ablation's
            callback("loss", step, 1.0 / step)
        callback("val", 5, 0.8)
        for step in (1, 5):
            callback("loss", step, 2.0 / step)
        rows = [{"arm": "teacher-fp32", "quality": 0.8, "latency_p50_ms": 4.0, "metric": "accuracy"},
                {"arm": "student-fp32", "quality": 0.79, "latency_p50_ms": 2.0, "metric": "accuracy"}]
        return Study(result=type("R", (), {"close": lambda self: calls.append("closed")})(), tolerance=3.2,
                     ablation=None, rows=rows, summary={"stacked_arm": "student-fp32"})

    monkeypatch.setattr(distill_study, "run", fake_run)
    task = get_task("text-classification")
    table = ResultsTable(tmp_path / "results.jsonl")
    panel = DistillPanel(task, table, eval_limit=40, max_seconds=0.5, max_steps=7, rounds=2)
    assert set(panel.stack.value) <= set(panel.stack.options)
    assert all(name.startswith("student+") for name in panel.stack.options)
    from workbench.steps.distill import step as distill_step_module

    callback = None

    def capture(fn):            # the panel's live callback, as training_callback registers it
        nonlocal callback
        callback = fn
        return original(fn)

    original = distill_step_module.training_callback
    monkeypatch.setattr("workbench.ui.distill_panel.training_callback", capture)
    panel.layers.value, panel.alpha.value = 1, 0.7
    rows = panel.run()
    kw = calls[0]
    assert kw["task"] is task and kw["only"] == list(panel.stack.value) and kw["eval_limit"] == 40
    assert kw["num_layers"] == 1 and kw["alpha"] == 0.7 and kw["max_steps"] == 7 and kw["ablation"] is True
    assert kw["retention_min"] == 0.96 and kw["seconds"] == 0.5 and kw["rounds"] == 2 and calls[-1] == "closed"
    assert [r["arm"] for r in rows] == ["teacher-fp32", "student-fp32"] and len(table.rows) == 2
    assert panel.summary["stacked_arm"] == "student-fp32" and "student-fp32" in panel.status.value
    names = [trace.name for trace in panel.loss_figure.data]
    assert names == ["KD loss", "KD validation", "no-KD loss", "no-KD validation"]
    assert list(panel.loss_figure.data[0].y) == [1.0, 0.5, 0.2] and list(panel.loss_figure.data[2].x) == [1, 5]
