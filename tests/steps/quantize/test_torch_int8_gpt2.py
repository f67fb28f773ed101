"""torch dynamic int8 of GPT-2: its Conv1D layers (most of the parameters) get int8 weights, and the share says so."""
import pytest
import torch

from workbench.core import Variant, apply
from workbench.measure.size import variant_size
from workbench.runtime.torch_runner import TorchRunner
from workbench.steps import QuantizeDynamicConfig
from workbench.steps.quantize.dynamic import conv1d_to_linear


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=96, n_positions=32, n_embd=64, n_layer=2, n_head=2)
    return GPT2LMHeadModel(config).eval(), config


def test_conv1d_becomes_an_equivalent_linear():
    import copy

    model, _ = _tiny_gpt2()
    converted = copy.deepcopy(model)
    assert conv1d_to_linear(converted) == 2 * 4  # c_attn, attn c_proj, c_fc, mlp c_proj per block
    assert not any(type(m).__name__ == "Conv1D" for m in converted.modules())
    ids = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert torch.allclose(converted(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-5)


def test_gpt2_int8_quantises_the_conv1d_layers():
    model, cfg = _tiny_gpt2()
    base = Variant(name="torch-fp32", task="tiny-gpt2", backend="torch", device="cpu", precision="fp32",
                   runner=TorchRunner(model, "cpu", ("input_ids",)), model=model)
    int8 = apply(base, QuantizeDynamicConfig.per_channel_int8())

    d, layers, vocab, positions = cfg.n_embd, cfg.n_layer, cfg.vocab_size, cfg.n_positions
    block_weights = d * 3 * d + d * d + d * 4 * d + 4 * d * d          # c_attn, attn.c_proj, c_fc, mlp.c_proj
    block_biases = 3 * d + d + 4 * d + d
    layer_norms = 2 * d * (2 * layers + 1)
    fp32_params = vocab * d + positions * d + layers * (block_weights + block_biases) + layer_norms
    assert sum(p.numel() for p in model.parameters()) == fp32_params
    int8_weights = layers * block_weights + vocab * d                  # blocks + the (tied) LM head, as its own int8
    share = int8_weights / (fp32_params + vocab * d)                    # the int8 head is a copy beside the fp32 wte
    assert share > 0.5
    assert int8.meta["int8_param_share"] == round(share, 4)
    assert int8.meta["quantized_layers"] == 4 * layers + 1 and int8.meta["conv1d_converted"] == 4 * layers
    size = variant_size(int8)
    assert size["int8_param_share"] == round(share, 4) and size["params"] == fp32_params + vocab * d

    ids = torch.randint(0, vocab, (4, 24), generator=torch.Generator().manual_seed(2))
    ref, got = base({"input_ids": ids}), int8({"input_ids": ids})
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()
    assert (got.argmax(-1) == ref.argmax(-1)).float().mean() >= 0.95
    assert not torch.equal(got, ref)  # the int8 kernels really ran


def test_int8_share_of_an_ort_int8_model(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from workbench.runtime.weights import onnx_int8_share

    w8 = numpy_helper.from_array(np.ones((64, 32), np.int8), "w8")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    bias = numpy_helper.from_array(np.zeros(32, np.float32), "b")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])
    nodes = [helper.make_node("DequantizeLinear", ["w8", "s"], ["w"]), helper.make_node("MatMul", ["x", "w"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w8, scale, bias]),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, tmp_path / "m.onnx")
    assert onnx_int8_share(tmp_path / "m.onnx") == pytest.approx(64 * 32 / (64 * 32 + 1 + 32))
