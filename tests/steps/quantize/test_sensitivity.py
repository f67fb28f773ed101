"""Per-layer sensitivity of static int8 on the demo classifier: groups, ranking, and a suggestion that helps."""
import pytest
import torch

from workbench.core import apply
from workbench.steps.quantize.diagnostics import node_counts
from workbench.steps.quantize.sensitivity import layer_sensitivity, node_group
from workbench.steps import QuantizeStaticConfig, calibrate


def test_node_groups():
    assert node_group("/bert/encoder/layer.3/attention/self/query/MatMul") == "layer.3"
    assert node_group("/transformer/h.10/mlp/c_fc/MatMul") == "layer.10"
    assert node_group("/bert/pooler/dense/Gemm") == "pooler"
    assert node_group("/classifier/Gemm") == "classifier"


@pytest.mark.slow  # integration-like: one static int8 quantisation per layer group, then two more
def test_layer_sensitivity_ranks_groups_and_exclusion_helps(tmp_path, demo_classifier_onnx):
    task, _, onnx_fp32 = demo_classifier_onnx
    ranges = calibrate(onnx_fp32, task.calibration_batches(16, batch_size=8), method="minmax", out_dir=tmp_path)
    batches = [task.example_inputs(8, 128)]
    report = layer_sensitivity(onnx_fp32, ranges, batches, max_suggestions=1, min_sqnr_gap_db=0.0)
    groups = {r["group"] for r in report.rows}
    layers = task.load_model().config.num_hidden_layers
    assert {f"layer.{i}" for i in range(layers)} <= groups and "classifier" in groups
    sqnrs = [r["sqnr_db"] for r in report.rows]
    assert sqnrs == sorted(sqnrs)  # worst first
    assert report.full_int8["sqnr_db"] <= min(sqnrs) + 0.5  # everything quantised is at least as noisy as any one group
    assert report.suggested_groups == (report.rows[0]["group"],) and report.suggested_exclusions
    assert "suggested to keep in float" in report.to_text()

    cfg = QuantizeStaticConfig(ranges=str(ranges.folder), out_dir=str(tmp_path))
    full = apply(onnx_fp32, cfg)
    fixed = apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder), out_dir=str(tmp_path),
                                                  nodes_to_exclude=report.suggested_exclusions))
    assert node_counts(fixed.artifact_path)["quantized_nodes"] < node_counts(full.artifact_path)["quantized_nodes"]

    def sqnr(v):
        ref, got = onnx_fp32(batches[0]), v(batches[0])
        return float(10 * torch.log10((ref ** 2).mean() / ((ref - got) ** 2).mean()))

    assert sqnr(fixed) > sqnr(full)  # keeping the worst group in float removes its noise: strictly closer to fp32


def test_bad_granularity(tmp_path):
    with pytest.raises(ValueError, match="granularity"):
        layer_sensitivity(None, tmp_path, [], granularity="tensor")
