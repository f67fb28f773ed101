"""`workbench optimize` as a new user runs it: their own local HF directory and a JSONL file, one command, a decision
and a report that says why (reduced candidate list of conftest.py; no bundle, so no Triton: the hand-off has its own
integration test)."""
import json
import shutil

import pytest

from workbench.tasks.text_classification import DEMO_MODEL_DIR


@pytest.mark.slow
def test_local_model_and_jsonl_give_a_decision_and_a_report(small, tmp_path, capsys):
    from workbench.cli import main

    model = shutil.copytree(DEMO_MODEL_DIR, tmp_path / "my-model")
    data = tmp_path / "eval.jsonl"
    rows = [{"text": "Return the logger with the given name.", "label": "logging"},
            {"text": "Create an event loop and run the coroutine.", "label": "asyncio"},
            {"text": "Write a message to the log at warning level.", "label": "logging"},
            {"text": "Wait for the task to finish in the event loop.", "label": "asyncio"}] * 12
    data.write_text("\n".join(json.dumps(r) for r in rows))
    code = main(["optimize", "--task", "text-classification", "--model", str(model), "--data", str(data),
                 "--slo-ms", "2000", "--percentile", "p50", "--max-drop", "100", "--budget", "15m",
                 "--study", "mine", "--no-bundle"])
    out = capsys.readouterr().out
    assert code == 0
    decision = json.loads((small / "mine" / "decision.json").read_text())
    assert decision["model"] == str(model) and decision["complete"] is True and decision["pick"]["arm"]
    assert decision["pick"]["quality"]["split"] == "test"
    lines = out.splitlines()
    assert any(line.startswith(f"optimize text-classification ({model})") for line in lines)   # after progress
    assert any(line.startswith(f"PICK {decision['pick']['arm']} at batch") for line in lines)
    assert any("broken-arm" in line and "failed to build" in line for line in lines)
    report = small / "mine" / "report.html"
    assert f"wrote {report}" in out and "why" in report.read_text().lower()


def test_a_budget_below_the_baseline_is_refused_naming_the_budget_to_pass(small, capsys):
    from workbench.cli import main

    assert main(["optimize", "--task", "text-classification", "--budget", "5s", "--study", "tiny"]) == 2
    err = capsys.readouterr().err
    assert "too small for even the baseline" in err and "--budget" in err
    assert not (small / "tiny" / "decision.json").exists()
