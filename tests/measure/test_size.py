"""Size of int8 models (packed torch weights counted) and of ONNX models with external data under any name."""
import numpy as np
import pytest
import torch

from workbench.core import Variant
from workbench.measure.size import serialized_bytes, variant_size
from workbench.runtime.weights import int8_param_share, parameter_count

HEADER_BYTES = 4096  # safetensors' JSON header (names, dtypes, offsets) of a handful of tensors stays below this


def _linear_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.ReLU(), torch.nn.Linear(512, 384), torch.nn.ReLU(),
                               torch.nn.Linear(384, 10)).eval()


def _int8(model, per_channel=True):
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    return quantize_dynamic(model, {torch.nn.Linear: qconfig}, dtype=torch.qint8)


@pytest.mark.parametrize("per_channel", [True, False])
def test_dynamic_int8_size_counts_the_packed_int8_weights(per_channel):
    model = _linear_model()
    shapes = [(m.out_features, m.in_features) for m in model if isinstance(m, torch.nn.Linear)]
    fp32_data = sum(4 * o * i + 4 * o for o, i in shapes)
    # int8 weights, fp32 bias, weight scales (float64) and zero points (int64): one per output channel, or one per
    # layer per-tensor; plus each layer's unused output scale (fp32) and zero point (int64) buffers.
    qparams = (lambda o: 16 * o) if per_channel else (lambda o: 16)
    int8_data = sum(o * i + 4 * o + qparams(o) + 4 + 8 for o, i in shapes)
    q = _int8(model, per_channel)

    fp32_bytes, int8_bytes = serialized_bytes(model), serialized_bytes(q)
    assert fp32_data <= fp32_bytes <= fp32_data + HEADER_BYTES
    assert int8_data <= int8_bytes <= int8_data + HEADER_BYTES
    assert 0.25 <= int8_bytes / fp32_bytes <= 0.4
    assert parameter_count(q) == parameter_count(model) == sum(o * i + o for o, i in shapes)
    assert int8_param_share(q) == pytest.approx(sum(o * i for o, i in shapes) / parameter_count(model))
    assert int8_param_share(model) == 0.0


def test_variant_size_of_a_torch_int8_variant():
    from workbench.core import apply
    from workbench.runtime.torch_runner import TorchRunner
    from workbench.steps import QuantizeDynamicConfig

    model = _linear_model()
    base = Variant(name="torch-fp32", task="t", backend="torch", device="cpu", precision="fp32",
                   runner=TorchRunner(model, "cpu", ("x",)), model=model)
    q = apply(base, QuantizeDynamicConfig.per_channel_int8())
    fp32, int8 = variant_size(base), variant_size(q)
    assert int8["params"] == fp32["params"]
    assert int8["size_mb"] == round(serialized_bytes(q.model) / 1e6, 3)
    assert 0.25 <= int8["size_mb"] / fp32["size_mb"] <= 0.4
    assert int8["int8_param_share"] == round(int8_param_share(q.model), 4) > 0.99 and "int8_param_share" not in fp32


def _onnx_with_external_data(folder, location):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).random((256, 256), dtype=np.float32), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 256])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 256])
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g", [x], [y], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(folder / "model.onnx"), save_as_external_data=True, location=location,
                    size_threshold=0)
    return folder / "model.onnx", folder / location


@pytest.mark.parametrize("location", ["model.onnx_data", "model.onnx_data.bin", "model.onnx.data", "weights.bin"])
def test_onnx_size_counts_external_data_under_any_name(tmp_path, location):
    from workbench.runtime.onnx_files import external_data_files, onnx_files

    path, data = _onnx_with_external_data(tmp_path, location)
    assert data.stat().st_size == 256 * 256 * 4 and external_data_files(path) == [data]
    assert onnx_files(path) == [path, data]
    variant = Variant(name="ort-fp32", task="t", backend="onnxruntime", device="cpu", precision="fp32",
                      runner=None, artifact_path=path)
    assert variant_size(variant)["size_mb"] == round((path.stat().st_size + data.stat().st_size) / 1e6, 3)


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    import onnx

    from workbench.runtime.onnx_files import external_data_files

    path, _ = _onnx_with_external_data(tmp_path, "w.bin")
    model = onnx.load(str(path), load_external_data=False)
    next(e for e in model.graph.initializer[0].external_data if e.key == "location").value = "../elsewhere.bin"
    onnx.save_model(model, str(path))
    with pytest.raises(ValueError, match="outside the model's folder"):
        external_data_files(path)
