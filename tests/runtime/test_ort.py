"""ONNX Runtime sessions and OrtRunner: threads, providers, corrupt files, pickling, KV-cache feeding."""
import pickle

import numpy as np
import pytest
import torch

from workbench.runtime.ort import OnnxModelError, OrtRunner, check_onnx_file, create_session, select_providers


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    """A tiny two-input model exported with torch.onnx (no demo weights needed)."""
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.head = torch.nn.Embedding(30, 8), torch.nn.Linear(8, 3)

        def forward(self, input_ids, attention_mask):
            h = self.emb(input_ids) * attention_mask[..., None]
            return self.head(h.sum(1) / attention_mask.sum(1, keepdim=True))

    torch.manual_seed(0)
    model = Tiny().eval()
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    ids, mask = torch.randint(0, 30, (2, 6)), torch.ones(2, 6, dtype=torch.long)
    torch.onnx.export(model, (ids, mask), str(path), input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"}, "logits": {0: "b"}},
                      opset_version=17, dynamo=False)
    return model, path


def test_runner_matches_torch_and_pins_threads(tiny_onnx):
    model, path = tiny_onnx
    runner = OrtRunner(path, threads=1)
    assert runner.session.get_session_options().intra_op_num_threads == 1
    assert runner.providers == ["CPUExecutionProvider"]
    ids = torch.randint(0, 30, (4, 9))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "unused_extra": ids}
    out = runner(inputs)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (4, 3)
    with torch.no_grad():
        assert torch.allclose(out, model(ids, torch.ones_like(ids)), atol=1e-5)
    # int32 inputs are cast to what the graph declares (int64); a missing attention mask is filled with ones
    assert torch.allclose(runner({"input_ids": ids.int()}), out, atol=1e-6)
    clone = pickle.loads(pickle.dumps(runner))
    assert torch.allclose(clone(inputs), out)


@pytest.mark.parametrize("damage", ["missing", "empty", "truncated", "garbage"])
def test_corrupt_onnx_files_give_clear_errors(tiny_onnx, tmp_path, damage):
    _, good = tiny_onnx
    bad = tmp_path / "bad.onnx"
    data = good.read_bytes()
    if damage != "missing":
        bad.write_bytes({"empty": b"", "truncated": data[: len(data) // 3], "garbage": b"\x08\xff" * 64}[damage])
    with pytest.raises(OnnxModelError, match="does not exist|empty|corrupt or truncated"):
        check_onnx_file(bad)
    with pytest.raises(OnnxModelError):
        OrtRunner(bad)


def test_gpu_request_without_gpu_provider_falls_back_with_a_note(tiny_onnx):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has a GPU provider")
    providers, note = select_providers("cuda")
    assert providers == ["CPUExecutionProvider"] and "onnxruntime-gpu" in note
    sess = create_session(tiny_onnx[1], device="cuda", threads=1)
    assert "no GPU execution provider" in sess.provider_note
    with pytest.raises(ValueError, match="level"):
        create_session(tiny_onnx[1], level="max")


def test_missing_input_ids_is_a_clear_error(tiny_onnx):
    runner = OrtRunner(tiny_onnx[1], threads=1)
    with pytest.raises(ValueError, match="input_ids"):
        runner({"attention_mask": np.ones((1, 3), dtype=np.int64)})
