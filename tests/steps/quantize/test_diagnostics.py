"""Diagnostics: node counts quantised vs float, ISA flags, slower/accuracy flags with reasons, op profile."""
import onnx
import pytest
from onnx import TensorProto, helper

from workbench.runtime.cpu import cpu_isa
from workbench.steps.quantize.diagnostics import diagnose, format_report, node_counts


def _graph(nodes, path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    inits = [helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.1] * 16),
             helper.make_tensor("s", TensorProto.FLOAT, [], [0.1]), helper.make_tensor("z", TensorProto.INT8, [], [0])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_node_counts_qdq_and_float(tmp_path):
    qdq = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"]),
           helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"]),
           helper.make_node("MatMul", ["xd", "w"], ["m1"]),          # fed by DQ: runs int8 after fusion
           helper.make_node("MatMul", ["m1", "w"], ["m2"]),          # float
           helper.make_node("Relu", ["m2"], ["y"])]
    counts = node_counts(_graph(qdq, tmp_path / "m.onnx"))
    assert counts["by_op"]["MatMul"] == {"quantized": 1, "float": 1}
    assert counts["by_op"]["Relu"] == {"quantized": 0, "float": 1}
    assert counts["quant_glue_nodes"] == 2 and counts["quantized_nodes"] == 1 and counts["float_nodes"] == 2


def test_diagnose_flags_slower_and_accuracy_loss():
    isa = cpu_isa()
    assert set(isa) >= {"avx2", "avx512", "vnni", "amx", "flags"}
    parent = {"latency_p50_ms": 10.0, "quality": 0.80, "metric": "accuracy"}

    class V:
        meta = {"providers": ["CPUExecutionProvider"],
                "node_counts": {"quantized_nodes": 2, "float_nodes": 60, "quant_glue_nodes": 30}}

    row = {"latency_p50_ms": 12.0, "quality": 0.75, "metric": "accuracy", "batch_size": 1, "seq_len": 16,
           "config": {"per_channel": False}}
    diag = diagnose(parent, row, V(), accuracy_tolerance_pts=1.0)
    flags = {f["flag"]: f for f in diag["flags"]}
    assert diag["quality_drop_pts"] == pytest.approx(5.0) and diag["speedup"] == pytest.approx(10 / 12, rel=1e-3)
    assert "per_channel=True" in " ".join(flags["accuracy_loss"]["likely_reasons"])
    reasons = " ".join(flags["slower_than_parent"]["likely_reasons"])
    assert "few ops quantised" in reasons and "tiny batch" in reasons
    if not isa["vnni"]:
        assert "VNNI" in reasons
    text = format_report(diag)
    assert "FLAG slower_than_parent" in text and "FLAG accuracy_loss" in text
    fine = diagnose(parent, {"latency_p50_ms": 4.0, "quality": 0.798, "metric": "accuracy"})
    assert fine["flags"] == [] and fine["speedup"] == 2.5


def test_op_time_profile_shares(tmp_path):
    import numpy as np

    from workbench.runtime.profile import op_time_profile

    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    shares = op_time_profile(_graph(nodes, tmp_path / "f.onnx"), {"x": np.ones((1, 4), np.float32)}, threads=1,
                             runs=3, level="disable")
    assert set(shares) == {"MatMul", "Relu"} and sum(shares.values()) == pytest.approx(1.0, abs=0.01)


def test_diagnose_uses_the_paired_difference_on_the_same_examples():
    import numpy as np

    from workbench.util.stats import NO_MEASURABLE_LOSS, paired_bootstrap_diff
    from workbench.tasks.base import QualityResult

    parent_scores = np.array([1.0] * 160 + [0.0] * 40)
    noisy = parent_scores.copy()
    noisy[[0, 1, 2]] = 0.0                                          # 3 examples lost: 1.5 pts, inside the noise
    noisy[[160]] = 1.0                                              # 1 gained
    parent_row = {"latency_p50_ms": 10.0, "quality": 0.80, "metric": "accuracy"}
    row = {"latency_p50_ms": 5.0, "quality": float(noisy.mean()), "metric": "accuracy"}
    parent_q = QualityResult("accuracy", 0.8, 0.0, 1.0, 200, per_example=tuple(parent_scores))
    diag = diagnose(parent_row, row, accuracy_tolerance_pts=0.5, parent_quality=parent_q, quality=noisy)
    _, low, high = paired_bootstrap_diff(parent_scores, noisy)
    assert low < 0 < high
    assert diag["quality_drop_pts"] == NO_MEASURABLE_LOSS and diag["flags"] == []
    assert diag["quality_drop_ci_pts"] == [round(100 * low, 3), round(100 * high, 3)]
    assert NO_MEASURABLE_LOSS in format_report(diag)

    lost = parent_scores.copy()
    lost[:12] = 0.0                                                 # 12 lost: 6 pts, measurable
    diag = diagnose(parent_row, dict(row, quality=float(lost.mean())), accuracy_tolerance_pts=0.5,
                    parent_quality=parent_scores, quality=lost)
    assert diag["quality_drop_pts"] == pytest.approx(6.0)
    assert 0 < diag["quality_drop_ci_pts"][0] <= 6.0 <= diag["quality_drop_ci_pts"][1]
    assert [f["flag"] for f in diag["flags"]] == ["accuracy_loss"]
