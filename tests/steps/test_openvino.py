"""OpenVINO step on the demo classifier: fp32 matches the ONNX export, NNCF int8 runs int8 kernels and keeps accuracy,
bf16 is refused where the CPU has no native bf16, bad configs say what to do."""
import numpy as np
import pytest
import torch

pytest.importorskip("openvino")
pytest.importorskip("nncf")

from workbench.core import apply  # noqa: E402
from workbench.runtime import openvino_file, with_threads  # noqa: E402
from workbench.runtime.openvino import bf16_capable, precision_shares  # noqa: E402
from workbench.steps.openvino import OpenVinoConfig, load_calibration_set, save_calibration_set  # noqa: E402

EVAL = 96


@pytest.fixture(scope="module")
def setup(tmp_path_factory, demo_classifier_onnx):
    out = str(tmp_path_factory.mktemp("ov"))
    task, base, onnx = demo_classifier_onnx
    return task, base, onnx, task.evaluate(base, limit=EVAL).value, out


def test_calibration_set_round_trip(tmp_path):
    batches = [{"input_ids": torch.arange(6).view(2, 3), "attention_mask": torch.ones(2, 3, dtype=torch.long)}] * 2
    path = save_calibration_set(batches, tmp_path)
    back = load_calibration_set(path)
    assert len(back) == 2 and np.array_equal(back[1]["input_ids"], np.arange(6).reshape(2, 3))
    assert save_calibration_set(batches, tmp_path) == path  # named by content
    with pytest.raises(ValueError, match="no calibration batches"):
        save_calibration_set([], tmp_path)


def test_config_validation():
    with pytest.raises(ValueError, match="precision 'int4' unknown"):
        OpenVinoConfig(precision="int4")
    with pytest.raises(ValueError, match="save_calibration_set"):
        OpenVinoConfig(precision="int8-static")
    with pytest.raises(ValueError, match="used by precision=.int8-static. only"):
        OpenVinoConfig(calibration="x.npz")


def test_fp32_matches_the_onnx_export_and_runs_at_its_threads(setup):
    task, base, onnx, _, out = setup
    ov = apply(onnx, OpenVinoConfig(threads=1, out_dir=out))
    x = task.example_inputs(4, 32)
    assert ov.backend == "openvino" and ov.precision == "fp32" and ov.runner.threads == 1
    assert openvino_file(ov).suffix == ".xml" and ov.artifact_path is None
    torch.testing.assert_close(ov(x), onnx(x), rtol=1e-3, atol=1e-3)
    assert with_threads(ov, 2).runner.threads == 2 and with_threads(ov, 2).meta["ov_threads"] == 2
    with pytest.raises(ValueError, match="apply ExportOnnxConfig first"):
        apply(base, OpenVinoConfig())


def test_int8_static_runs_int8_kernels_and_keeps_accuracy(setup):
    task, _, onnx, acc, out = setup
    calib = save_calibration_set(task.calibration_batches(32, batch_size=8))
    int8 = apply(onnx, OpenVinoConfig.int8_static(calib).__class__(precision="int8-static", calibration=str(calib),
                                                                    out_dir=out))
    assert int8.precision == "int8" and int8.name == "ov-int8-static"
    shares = precision_shares(int8.runner.kernel_profile(task.example_inputs(2, 32), runs=2))
    assert shares.get("int8", 0) > 0.3, shares  # the GEMMs run int8 kernels, not f32
    assert task.evaluate(int8, limit=EVAL).value >= acc - 0.04


def test_int8_weights_are_smaller_and_keep_accuracy(setup):
    task, _, onnx, acc, out = setup
    fp32 = apply(onnx, OpenVinoConfig(out_dir=out))
    wc = apply(onnx, OpenVinoConfig(precision="int8-weights", out_dir=out))
    assert wc.meta["size_mb"] < 0.5 * fp32.meta["size_mb"]
    assert task.evaluate(wc, limit=EVAL).value >= acc - 0.03


def test_bf16_is_not_available_without_native_bf16(setup):
    _, _, onnx, _, out = setup
    if bf16_capable()[0]:
        assert apply(onnx, OpenVinoConfig.bf16().__class__(precision="bf16", out_dir=out)).precision == "bf16"
    else:
        with pytest.raises(ValueError, match="not available here"):
            apply(onnx, OpenVinoConfig.bf16())
