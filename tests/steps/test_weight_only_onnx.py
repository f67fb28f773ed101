"""ORT MatMulNBits weight-only int4 / int8 on the demo LM's KV-cache export: every projection packed, the cache kept."""
import numpy as np
import pytest
import torch

from workbench.core import apply
from workbench.steps.export_onnx import ExportOnnxConfig
from workbench.steps.weight_only_onnx import WeightOnlyOrtConfig, gemm_to_matmul
from workbench.tasks import get_task


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    task = get_task("causal-lm")
    base = task.baseline()
    return task, base, apply(base, ExportOnnxConfig(out_dir=str(tmp_path_factory.mktemp("onnx"))))


# The tied LM head is quantised too, also where optimum deduplicates it into Transpose(embedding) (accelerate
# installed): the transpose is folded into a constant first.
@pytest.mark.parametrize("config, max_share", [(WeightOnlyOrtConfig.int4(), 0.2), (WeightOnlyOrtConfig.int8(), 0.33)])
def test_matmul_nbits_packs_projections_and_generates(exported, tmp_path, config, max_share):
    task, base, onnx_fp32 = exported
    v = apply(onnx_fp32, WeightOnlyOrtConfig(bits=config.bits, block_size=config.block_size, out_dir=str(tmp_path)))
    facts = v.meta["weight_only"]
    assert facts["gemm_rewritten"] == 24 and facts["matmul_nbits_nodes"] == 25   # GPT-2 Conv1D + LM head
    assert facts["float_matmul_nodes"] == 12                                     # attention QK / AV stay float
    assert facts["weight_bytes_per_step"] < max_share * facts["parent_weight_bytes_per_step"]
    assert v.runner.past_names and v.parent_id == onnx_fp32.id
    ids = task.example_inputs(2, 48)["input_ids"]
    agree = float((v({"input_ids": ids}).argmax(-1) == base({"input_ids": ids}).argmax(-1)).float().mean())
    assert agree > 0.9
    prompt = task.prompts(n=1, prompt_tokens=16)[0]
    out = v.runner.generate_greedy(prompt, max_new_tokens=8)
    assert out.shape == (1, 24) and torch.equal(out[:, :16], prompt)


def test_gemm_rewrite_keeps_the_maths():
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((6, 4)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1, name="g")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 6])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert gemm_to_matmul(model) == 1
    assert [n.op_type for n in model.graph.node] == ["MatMul", "Add"]
    x = rng.standard_normal((3, 4)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], x @ w.T + b, rtol=1e-5, atol=1e-5)


def test_bad_configs_and_wrong_variants_are_clear(exported):
    _task, base, _onnx = exported
    with pytest.raises(ValueError, match="bits=3"):
        WeightOnlyOrtConfig(bits=3)
    with pytest.raises(ValueError, match="block_size=48"):
        WeightOnlyOrtConfig(block_size=48)
    with pytest.raises(ValueError, match="accuracy_level=7"):
        WeightOnlyOrtConfig(accuracy_level=7)
    with pytest.raises(ValueError, match="needs an ONNX variant.*ExportOnnxConfig"):
        apply(base, WeightOnlyOrtConfig())
