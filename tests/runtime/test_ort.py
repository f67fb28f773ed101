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


def test_sessions_do_not_leave_threads_spinning_after_a_call(tiny_onnx):
    # a spinning intra-op pool takes a core from whatever runs next (the next arm of an interleaved run)
    sess = create_session(tiny_onnx[1], threads=2)
    assert sess.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert sess.get_session_options().intra_op_num_threads == 2


def test_missing_input_ids_is_a_clear_error(tiny_onnx):
    runner = OrtRunner(tiny_onnx[1], threads=1)
    with pytest.raises(ValueError, match="input_ids"):
        runner({"attention_mask": np.ones((1, 3), dtype=np.int64)})


def _cache_graph(path, past_dims):
    """A graph with one past input of ``past_dims`` (the past axis named past_sequence_length); present = past +
    one row per new token along that axis, logits [B, S, 2], and mask_len = the attention mask's length."""
    import onnx
    from onnx import TensorProto, helper

    axis = past_dims.index("past_sequence_length")
    nodes = [
        helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["ids_f", "ax2"], ["ids3"]),
        helper.make_node("Concat", ["ids3", "ids3"], ["logits"], axis=2),
        helper.make_node("Shape", ["past_key_values.0.key"], ["past_shape"]),
        helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
        helper.make_node("Slice", ["ids_shape", "one", "two"], ["seq"]),
        helper.make_node("ScatterElements", ["past_shape", "axis_idx", "seq"], ["new_shape"]),
        helper.make_node("ConstantOfShape", ["new_shape"], ["new_rows"],
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("Concat", ["past_key_values.0.key", "new_rows"], ["present.0.key"], axis=axis),
        helper.make_node("Shape", ["attention_mask"], ["mask_shape"]),
        helper.make_node("Slice", ["mask_shape", "one", "two"], ["mask_len"]),
    ]
    ints = lambda name, v: helper.make_tensor(name, TensorProto.INT64, [len(v)], v)  # noqa: E731
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"]),
              helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch_size", "total"]),
              helper.make_tensor_value_info("past_key_values.0.key", TensorProto.FLOAT, past_dims)]
    graph = helper.make_graph(
        nodes, "cache", inputs,
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("present.0.key", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("mask_len", TensorProto.INT64, None)],
        initializer=[ints("ax2", [2]), ints("one", [1]), ints("two", [2]), ints("axis_idx", [axis])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


def test_kv_cache_layout_is_read_from_the_graph_not_assumed(tmp_path):
    # GPT-BigCode-style fused 3-D cache [batch, past_seq, 2 * head_dim]: the past axis is 1, not 2.
    runner = OrtRunner(_cache_graph(tmp_path / "m.onnx", ["batch_size", "past_sequence_length", 8]), threads=1)
    assert runner.past_axis == 1
    assert runner.empty_past(3)["past_key_values.0.key"].shape == (3, 0, 8)
    past = {"past_key_values.0.key": np.zeros((2, 5, 8), np.float32)}
    out = runner.run({"input_ids": torch.ones(2, 1, dtype=torch.long), **past})
    assert int(out["mask_len"][0]) == 6  # mask covers 5 cached + 1 new positions
    ids = runner.generate_greedy(torch.ones(2, 4, dtype=torch.long), max_new_tokens=3)
    assert ids.shape == (2, 7)


def test_symbolic_head_dims_come_from_the_family_adapter(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16).save_pretrained(tmp_path)
    dims = ["batch_size", "num_kv_heads", "past_sequence_length", "head_size"]
    runner = OrtRunner(_cache_graph(tmp_path / "model.onnx", dims), threads=1)
    assert runner.past_axis == 2
    assert runner.empty_past(3)["past_key_values.0.key"].shape == (3, 2, 0, 16)
