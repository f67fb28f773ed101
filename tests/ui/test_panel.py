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
    return WorkbenchPanel(study="panel", options=options, eval_limit=32, max_seconds=1.5, **kwargs)


def test_run_button_measures_plots_and_reports_what_cannot_run():
    import torch

    gpu = torch.cuda.is_available()
    panel = _panel()
    panel.tick("keep 2 layers", "keep 1 layer", "fails", "needs_foo")
    # Without a GPU, ticking CUDA is the choice that cannot run here and must be reported; on a GPU machine it
    # stays unticked so the same CPU rows are expected everywhere.
    panel.devices["cuda"].value = not gpu
    panel.run_button.click()

    measured = [r["option"] for r in panel.rows]
    assert measured == ["baseline (cpu)", "keep 2 layers", "keep 1 layer"]
    assert all(r["metric"] == "accuracy" and r["quality_n"] == 32 and r["latency_p50_ms"] > 0 for r in panel.rows)
    assert panel.rows[1]["lineage"][0][0] == "test_keep_layers"
    assert all(r["instance"] == "c7i.large" and r["usd_per_1k_requests"] > 0 for r in panel.rows)   # price table
    said = "\n".join(panel.messages)
    assert "needs_foo: skipped, cannot import workbench.steps.foo" in said
    assert "fails on cpu" in said and "no such layer" in said
    assert ("CUDA: torch sees no GPU" in said) is not gpu
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


# ---- issue #12: no silent retry of a failed torch step on the ONNX route --------------------------------------------

@dataclass(frozen=True)
class OnnxOnlyConfig:
    """Test-only step that, like ORT graph optimisation, needs an ONNX model; ``broken`` fails there too."""

    broken: bool = False


def _onnx_only(variant, config):
    if not variant.meta.get("test_export"):
        raise ValueError("test_onnx_only needs an ONNX variant: apply ExportOnnxConfig first")
    if config.broken:
        raise RuntimeError("the ONNX graph has no such node")
    return dataclasses.replace(variant, name=variant.name + "-opt")


@pytest.fixture
def onnx_only_step(step_registry):
    step_registry("test_onnx_only", OnnxOnlyConfig, _onnx_only)


def _tiny_panel(monkeypatch, export):
    """A panel over a tiny module task whose ONNX export is stood in by ``export`` (no real export: fast)."""
    import torch

    from workbench import core
    from workbench.steps import ExportOnnxConfig
    from workbench.tasks import from_module

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.linear(x)

    monkeypatch.setitem(core._STEPS, ExportOnnxConfig, ("export_onnx", export))
    panel = WorkbenchPanel(study="detour", options=[("onnx only", OnnxOnlyConfig()),
                                                    ("onnx only, broken", OnnxOnlyConfig(broken=True))],
                           eval_limit=8, max_seconds=0.05)
    panel._tasks[(panel.task_kind.value, None, None)] = from_module(Tiny(), lambda v: 0.5, {"x": torch.randn(4, 8)})
    return panel


def _fake_export(variant, config):
    return dataclasses.replace(variant, name="fake-onnx", meta={**variant.meta, "test_export": True})


def test_a_torch_step_failure_is_reported_and_the_onnx_route_is_labelled(monkeypatch, onnx_only_step):
    panel = _tiny_panel(monkeypatch, _fake_export)
    panel.tick("onnx only")
    panel.run()
    said = "\n".join(panel.messages)
    # the first (torch) error is reported, and the row says what ran
    assert "test_onnx_only failed on the torch model: ValueError: test_onnx_only needs an ONNX variant" in said
    assert "measured baseline → export_onnx → test_onnx_only" in said
    row = panel.rows[-1]
    assert row["option"] == "onnx only (on the ONNX export)"
    assert row["route"] == "baseline → export_onnx → test_onnx_only"
    assert "needs an ONNX variant" in row["torch_errors"][0]
    assert [step for step, _cfg in row["lineage"]] == ["export_onnx", "test_onnx_only"]
    assert "✓ onnx only (on the ONNX export) on cpu" in said


def test_when_the_onnx_route_fails_too_the_torch_error_comes_first(monkeypatch, onnx_only_step):
    def broken_export(variant, config):
        raise RuntimeError("exporter crashed")

    panel = _tiny_panel(monkeypatch, broken_export)
    panel.tick("onnx only")
    panel.run()
    failed = [json.loads(line) for line in panel.table.path.read_text().splitlines()][-1]
    error = failed["error"]
    assert failed["failed"] and error.index("needs an ONNX variant") < error.index("exporter crashed")
    panel = _tiny_panel(monkeypatch, _fake_export)
    panel.tick("onnx only, broken")
    panel.run()
    error = panel.messages[-2]
    assert error.index("failed on the torch model") < error.index("on its ONNX export: RuntimeError: the ONNX graph")


# ---- issue #17: this CPU's arms as tick boxes -----------------------------------------------------------------------

def test_isa_arms_are_tick_boxes_and_those_that_cannot_run_here_say_why():
    from workbench.runtime.cpu import isa_summary, native_bf16
    from workbench.ui.step_options import isa_step_options

    options = {o.label: o for o in isa_step_options()}
    assert "cpu: torch-fp32" not in options                      # the panel always measures the baseline
    assert options["cpu: ov-int8-static"].reason.startswith("not available here: needs calibration data")
    native, why = native_bf16(isa_summary())
    assert bool(options["cpu: ov-bf16"].reason) != native and (native or why in options["cpu: ov-bf16"].reason)
    assert [type(c).__name__ for c in options["cpu: ov-int8-weights"].configs] == ["ExportOnnxConfig", "OpenVinoConfig"]
    panel = WorkbenchPanel(study="isa-options", eval_limit=32, max_seconds=1.0)
    static = next(o for o in panel.options if o.label == "cpu: ov-int8-static")
    assert not static.reason and static.configs[-1].calibration.endswith(".npz")   # the demo's calibration split
    assert "cpu: ov-bf16" in panel.step_boxes and ("unavailable" in panel.step_boxes["cpu: ov-bf16"].description) != native
