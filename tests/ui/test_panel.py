"""WorkbenchPanel driven from code: tick, press Run, live plot, failures reported while the rest goes on."""
import dataclasses
import json
from dataclasses import dataclass

import pytest

from workbench.runtime.torch_runner import TorchRunner
from workbench.ui.panel import WorkbenchPanel
from workbench.ui.step_options import StepOption, discover_step_options


@dataclass(frozen=True)
class KeepLayersConfig:
    """Test-only step: keep the first ``keep`` encoder layers (a real, cheaper variant of the demo BERT)."""

    keep: int = 2

    @classmethod
    def one(cls):
        return cls(keep=1)


def _keep_layers(variant, config):
    import copy

    model = copy.deepcopy(variant.model)
    model.bert.encoder.layer = model.bert.encoder.layer[:config.keep]
    return dataclasses.replace(variant, name=f"keep{config.keep}", model=model,
                               runner=TorchRunner(model, variant.device, ("input_ids", "attention_mask", "token_type_ids")))


@dataclass(frozen=True)
class AlwaysFailsConfig:
    reason: str = "this model has no such layer"


def _always_fails(variant, config):
    raise ValueError(config.reason)


@pytest.fixture(autouse=True)
def _test_steps(step_registry):
    step_registry("test_keep_layers", KeepLayersConfig, _keep_layers)
    step_registry("test_always_fails", AlwaysFailsConfig, _always_fails)


def _panel(**kwargs):
    options = [("keep 2 layers", KeepLayersConfig()), ("keep 1 layer", KeepLayersConfig.one()),
               ("fails", AlwaysFailsConfig()), StepOption("needs_foo", (), "cannot import workbench.steps.foo: no foo")]
    return WorkbenchPanel(study="panel", options=options, eval_limit=32, max_seconds=0.5, **kwargs)


def test_run_button_measures_plots_and_reports_what_cannot_run():
    panel = _panel()
    panel.tick("keep 2 layers", "keep 1 layer", "fails", "needs_foo")
    panel.devices["cuda"].value = True
    panel.run_button.click()

    measured = [r["option"] for r in panel.rows]
    assert measured == ["baseline (cpu)", "keep 2 layers", "keep 1 layer"]
    assert all(r["metric"] == "accuracy" and r["quality_n"] == 32 and r["latency_p50_ms"] > 0 for r in panel.rows)
    assert panel.rows[1]["lineage"][0][0] == "test_keep_layers"
    assert all(r["instance"] == "c7i.large" and r["usd_per_1k_requests"] > 0 for r in panel.rows)   # price table
    said = "\n".join(panel.messages)
    assert "needs_foo: skipped, cannot import workbench.steps.foo" in said
    assert "fails on cpu" in said and "no such layer" in said
    import torch
    if not torch.cuda.is_available():
        assert "CUDA: torch sees no GPU" in said
    # live plot: one marker per measured row, the front drawn, export choices from the front
    markers = [t for t in panel.figure.data if t.mode == "markers"]
    assert sum(len(t.x) for t in markers) == 3 and markers[0].name == "baseline"
    assert any(t.name == "Pareto front" for t in panel.figure.data)
    assert panel.export_choice.value in {r["variant_id"] for r in panel.rows}
    # rows saved as measured, the failure recorded as a failed row
    saved = [json.loads(line) for line in panel.table.path.read_text().splitlines()]
    assert len(saved) == 4 and saved[-1]["failed"] and "no such layer" in saved[-1]["error"]
    assert not panel.run_button.disabled


def test_bad_choices_say_why():
    panel = _panel()
    with pytest.raises(ValueError, match="no step option 'nope': choose from"):
        panel.tick("nope")
    panel.model_dir.value = "/no/such/model"
    panel.data_path.value = "/no/such/data.jsonl"
    assert panel.run() == []
    assert "task text-classification" in panel.messages[-1]
    assert panel.export() is None and "run first" in panel.messages[-1]
    panel.devices["cpu"].value = False                  # nothing runnable ticked: said, nothing measured
    panel.model_dir.value = panel.data_path.value = ""
    assert panel.run() == [] and panel.rows == []
    assert "no device that can run here is ticked" in panel.messages[-2]


def test_discovery_offers_registered_steps_and_presets():
    labels = [o.label for o in discover_step_options()]
    assert "test_keep_layers" in labels and "test_keep_layers: one" in labels
    assert "test_always_fails" in labels
