"""A Llama-architecture LM (GQA, no ORT fusions): O3 falls back to O1 with a note; static int8 calibrates the
KV-cache graph on every input it takes (prefill + cached step) and the int8 model still decodes with its cache."""
import json

import pytest
import torch

from workbench.core import Variant, apply
from workbench.runtime.torch_runner import TorchRunner
from workbench.steps.export_onnx import ExportOnnxConfig
from workbench.steps.optimize import OptimizeConfig
from workbench.steps.quantize import QuantizeStaticConfig, calibrate


@pytest.fixture(scope="module")
def llama_onnx(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
    base = Variant(name="torch-fp32", task="tiny-llama", backend="torch", device="cpu", precision="fp32",
                   runner=TorchRunner(model.eval()), model=model)
    out = str(tmp_path_factory.mktemp("onnx"))
    return apply(base, ExportOnnxConfig(batch_sizes=(1, 2, 3), seq_lens=(4, 6, 8), out_dir=out)), out


def test_o3_on_a_family_without_fusions_is_o1_with_a_note(llama_onnx):
    onnx_fp32, out = llama_onnx
    fused = apply(onnx_fp32, OptimizeConfig.o3().__class__(level="O3", out_dir=out))
    assert fused.meta["optimize_level"] == "O1" and fused.name == "ort-fp32-o1"
    assert "llama" in fused.meta["optimize_note"] and "O3 asked" in fused.meta["optimize_note"]
    ids = torch.randint(0, 200, (2, 5))
    assert torch.allclose(fused({"input_ids": ids}), onnx_fp32({"input_ids": ids}), atol=1e-4)


def test_static_int8_calibrates_past_key_values(llama_onnx, tmp_path):
    onnx_fp32, out = llama_onnx
    batches = [{"input_ids": torch.randint(0, 200, (4, 8))} for _ in range(2)]
    ranges = calibrate(onnx_fp32, batches, out_dir=tmp_path)
    info = json.loads((ranges.folder / "calibration.json").read_text())
    # each batch of token ids became a prefill feed and a cached-step feed; examples are counted once
    assert info["kv_cache_calibrated"] and (info["n_batches"], info["n_examples"]) == (4, 8)
    int8 = apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder), out_dir=out))
    assert int8.meta["node_counts"]["quantized_nodes"] > 0
    tokens = int8.runner.generate_greedy(torch.randint(0, 200, (1, 5)), max_new_tokens=4)
    assert tokens.shape == (1, 9)


def test_decoder_calibration_needs_token_ids(llama_onnx, tmp_path):
    from workbench.steps.quantize.calibration import CalibrationDataError

    onnx_fp32, _ = llama_onnx
    with pytest.raises(CalibrationDataError, match="input_ids"):
        calibrate(onnx_fp32, [{"inputs_embeds": torch.zeros(1, 4, 32)}], out_dir=tmp_path)
    with pytest.raises(CalibrationDataError, match=">= 2 tokens"):
        calibrate(onnx_fp32, [{"input_ids": torch.ones(2, 1, dtype=torch.long)}], out_dir=tmp_path)
