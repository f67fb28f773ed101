"""Serving bundle of the demo classifier: layout, Triton config vs its schema, manifest, card, atomic writes."""
import json
import os

import pytest
from demo_bundle import demo_setup

from workbench.serving import bundle as export_mod
from workbench.serving.bundle import ExportError, batching_plan, export_bundle, variant_from_row
from workbench.util.files import sha256
from workbench.serving.triton_config import ModelConfigError, check_model_config


def test_bundle_layout_config_and_manifest():
    task, onnx_v, rows, bundle, _ = demo_setup()
    manifest = json.loads((bundle / "manifest.json").read_text())
    name = manifest["name"]
    model_dir = bundle / "model_repository" / name
    for rel in ("MODEL_CARD.md", "reference/inputs.npz", "reference/outputs.npz", "results.jsonl",
                f"model_repository/{name}/config.pbtxt", f"model_repository/{name}/1/model.onnx"):
        assert rel in manifest["files"], rel
    assert all(sha256(bundle / rel) == meta["sha256"] for rel, meta in manifest["files"].items())
    config = check_model_config((model_dir / "config.pbtxt").read_text(), expected_name=name)
    plan = manifest["batching"]
    assert config.backend == "onnxruntime" and config.max_batch_size == plan["max_batch_size"]
    assert list(config.dynamic_batching.preferred_batch_size) == plan["preferred_batch_sizes"]
    assert config.dynamic_batching.max_queue_delay_microseconds == plan["max_queue_delay_us"]
    assert [i.name for i in config.input] == list(onnx_v.runner.inputs) and [o.name for o in config.output] == ["logits"]
    assert list(config.input[0].dims) == [-1] and list(config.output[0].dims) == [12]
    assert config.instance_group[0].kind == config.instance_group[0].KIND_CPU
    assert manifest["lineage"][0]["step"] == "export_onnx" and manifest["lineage"][0]["config"]["type"]
    assert manifest["quality"]["metric"] == "accuracy" and manifest["environment"]["cpu"]
    assert manifest["workbench_version"] and manifest["cost"]["points"]
    assert 0 <= manifest["reference"]["batch_noise"] < 1e-4  # fp32: batch mates do not change an answer
    card = (bundle / "MODEL_CARD.md").read_text()
    for section in ("Intended use", "Lineage", "Quality", "95% CI", "Latency and throughput", "Cost", "Environment",
                    "Limitations"):
        assert section in card, section


def test_plan_follows_the_slo():
    _, onnx_v, rows, _, _ = demo_setup()
    loose = batching_plan(rows, onnx_v.id, slo_ms=10_000)
    assert loose["max_batch_size"] == 4 and 4 in loose["preferred_batch_sizes"]
    tight_ms = [r for r in rows if r.get("batch_size") == 1 and r.get("scenario") == "batching"][0]["latency_p99_ms"]
    tight = batching_plan(rows, onnx_v.id, slo_ms=tight_ms * 1.0001)
    assert tight["max_batch_size"] >= 1 and tight["max_queue_delay_us"] >= 0


def test_infeasible_slo_writes_nothing(tmp_path):
    _, onnx_v, rows, _, _ = demo_setup()
    with pytest.raises(ExportError, match="no feasible point"):
        export_bundle(onnx_v, rows, to=tmp_path / "b", slo_ms=1e-6)
    assert not (tmp_path / "b").exists() and not list(tmp_path.iterdir())


def test_existing_bundle_is_never_overwritten_by_a_failed_export(tmp_path, monkeypatch):
    task, onnx_v, rows, bundle, _ = demo_setup()
    with pytest.raises(ExportError, match="already exists"):
        export_bundle(onnx_v, rows, to=bundle, task=task)
    dest = tmp_path / "b"
    dest.mkdir()
    (dest / "manifest.json").write_text("previous bundle")

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(export_mod, "write_manifest", boom)
    with pytest.raises(OSError, match="disk full"):
        export_bundle(onnx_v, rows, to=dest, task=task, overwrite=True)
    assert (dest / "manifest.json").read_text() == "previous bundle"
    assert sorted(os.listdir(tmp_path)) == ["b"]  # no half-written temp folder left behind


def test_export_without_a_sweep_says_what_to_run():
    _, onnx_v, rows, _, _ = demo_setup()
    with pytest.raises(ExportError, match="workbench sweep"):
        batching_plan([r for r in rows if r.get("scenario") != "batching"], onnx_v.id, None)


@pytest.mark.parametrize("text, message", [
    ('name: "m" backend: "onnxruntime" max_batch_size: 4 colour: 1', "schema"),
    ('name: "m" backend: "onnxruntime" max_batch_size: 4 input [{name: "x" data_type: TYPE_INT64 dims: [-1]}] '
     'output [{name: "y" data_type: TYPE_FP32 dims: [2]}] dynamic_batching { preferred_batch_size: [8] }', "outside"),
    ('name: "m" backend: "onnxruntime" max_batch_size: 4 input [{name: "x" data_type: TYPE_INT64 dims: [0]}] '
     'output [{name: "y" data_type: TYPE_FP32 dims: [2]}]', "dims"),
    ('name: "m" max_batch_size: 4 input [{name: "x" data_type: TYPE_INT64 dims: [-1]}] '
     'output [{name: "y" data_type: TYPE_FP32 dims: [2]}]', "backend"),
])
def test_config_rules_reject_what_triton_would(text, message):
    with pytest.raises(ModelConfigError, match=message):
        check_model_config(text)


def test_variant_replays_from_its_results_row():
    task, onnx_v, rows, _, root = demo_setup()
    row = next(r for r in rows if r.get("variant_id") == onnx_v.id and r.get("lineage"))
    assert variant_from_row(task, row).id == onnx_v.id
    with pytest.raises(ExportError, match="another model"):
        variant_from_row(task, {**row, "variant_id": "0" * 12})
