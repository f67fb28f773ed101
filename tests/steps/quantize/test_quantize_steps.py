"""Optimize, dynamic and static int8 steps on the real demo classifier: structure, quality floors, clear errors."""
import pytest
import torch

from workbench.core import apply
from workbench.steps.quantize.diagnostics import node_counts
from workbench.steps import OptimizeConfig, QuantizeDynamicConfig, QuantizeStaticConfig, calibrate
from workbench.steps.quantize.calibration import CalibrationDataError

EVAL = 128  # test examples per accuracy check: enough for a floor, quick on 2 cores


@pytest.fixture(scope="module")
def setup(tmp_path_factory, demo_classifier_onnx):
    out = str(tmp_path_factory.mktemp("onnx"))
    task, base, onnx_fp32 = demo_classifier_onnx
    acc = task.evaluate(base, limit=EVAL).value
    return task, base, onnx_fp32, acc, out


def test_optimize_fuses_attention_and_layernorm(setup):
    task, base, onnx_fp32, _, out = setup
    fused = apply(onnx_fp32, OptimizeConfig.o3().__class__(level="O3", out_dir=out))
    ops = fused.meta["fused_ops"]
    layers = base.model.config.num_hidden_layers
    assert ops["Attention"] == layers and ops["SkipLayerNormalization"] == 2 * layers and ops["FastGelu"] == layers
    assert fused.meta["fused_ops_before"]["Attention"] == 0
    inputs = task.example_inputs(4, 64)
    assert torch.allclose(fused(inputs), base(inputs), atol=5e-2)  # FastGelu: tanh approximation of GELU
    with pytest.raises(ValueError, match="ONNX variant"):
        apply(base, OptimizeConfig())


def test_ort_dynamic_int8_quantises_matmuls_and_keeps_accuracy(setup):
    task, base, onnx_fp32, acc, out = setup
    int8 = apply(onnx_fp32, QuantizeDynamicConfig(per_channel=True, reduce_range=True, out_dir=out))
    counts = int8.meta["node_counts"]
    assert int8.precision == "int8" and counts["by_op"]["MatMulInteger"]["quantized"] >= 6 * 4
    assert int8.artifact_path.stat().st_size < onnx_fp32.artifact_path.stat().st_size * 0.6
    assert task.evaluate(int8, limit=EVAL).value >= acc - 0.03


def test_torch_dynamic_int8(setup):
    task, base, _, acc, _ = setup
    int8 = apply(base, QuantizeDynamicConfig.per_channel_int8())
    assert int8.backend == "torch" and int8.meta["quantized_layers"] == int8.meta["linear_layers"]
    assert task.evaluate(int8, limit=EVAL).value >= acc - 0.03
    with pytest.raises(ValueError, match="ONNX Runtime options"):
        apply(base, QuantizeDynamicConfig(reduce_range=True))


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_static_qdq_per_method_with_batched_calibration(setup, method):
    task, base, onnx_fp32, acc, out = setup
    ranges = calibrate(onnx_fp32, task.calibration_batches(16, batch_size=8), method=method, out_dir=out)
    assert ranges.n_batches == 2 and ranges.n_examples == 16
    int8 = apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder), per_channel=True, out_dir=out))
    counts = node_counts(int8.artifact_path)
    assert counts["by_op"]["MatMul"]["quantized"] >= 6 * 4 and counts["quant_glue_nodes"] > 0
    assert int8.meta["calibration"]["method"] == method and int8.name.startswith(f"ort-int8-static-{method}")
    assert task.evaluate(int8, limit=EVAL).value >= acc - 0.05


def _quantized_nodes(variant) -> set[str]:
    """Names of the MatMul/Gemm nodes that run as int8 in a QDQ model: their second input (the weight, or K in
    attention) comes from a DequantizeLinear. (A shared activation input can stay quantised for its other users.)"""
    import onnx

    graph = onnx.load(str(variant.artifact_path), load_external_data=False).graph
    dq_outputs = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and len(n.input) > 1
            and n.input[1] in dq_outputs}


def test_static_exclusions_and_bad_calibration_data(setup):
    task, base, onnx_fp32, _, out = setup
    ranges = calibrate(onnx_fp32, task.calibration_batches(16, batch_size=8), out_dir=out)
    head = [n for n in node_counts(onnx_fp32.artifact_path)["by_op"]]  # sanity: graph loaded
    assert "MatMul" in head
    excluded = apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder), op_types=("MatMul",), out_dir=out))
    gemm_float = node_counts(excluded.artifact_path)["by_op"].get("Gemm", {}).get("quantized", 0)
    assert gemm_float == 0  # Gemm (classifier head) excluded by op type
    # Excluding named nodes keeps exactly those in float, and only those.
    everything = _quantized_nodes(apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder), out_dir=out)))
    chosen = sorted(n for n in everything if "MatMul" in n)[:2]
    kept = apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder), nodes_to_exclude=tuple(chosen),
                                                 out_dir=out))
    assert len(chosen) == 2 and _quantized_nodes(kept) == everything - set(chosen)
    good = next(task.calibration_batches(8, batch_size=8))
    with pytest.raises(CalibrationDataError, match="rank"):
        calibrate(onnx_fp32, [{k: v[0] for k, v in good.items()}], out_dir=out)
    with pytest.raises(CalibrationDataError, match="integers"):
        calibrate(onnx_fp32, [{k: v.float() for k, v in good.items()}], out_dir=out)
    with pytest.raises(CalibrationDataError, match="lacks input"):
        calibrate(onnx_fp32, [{"input_ids": good["input_ids"]}], out_dir=out)
    with pytest.raises(FileNotFoundError, match="calibrate"):
        apply(onnx_fp32, QuantizeStaticConfig(ranges=out + "/nowhere"))
