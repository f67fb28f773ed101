"""llama.cpp as an optional arm: skipped with the install line when llama-cpp-python (or the converter) is missing;
where it is installed, the GGUF from llama.cpp's converter decodes HF's greedy tokens and is scored through
llama.cpp's own logits."""
import importlib.util

import pytest
import torch

from workbench.decoding import llama_cpp


def _hide_llama_cpp(monkeypatch, present: bool):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == "llama_cpp":
            return object() if present else None
        return real(name, *args, **kwargs)
    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_missing_library_or_converter_is_a_skip_with_the_fix(monkeypatch, tmp_path):
    from workbench.arms.llm import BENCHMARK_ARMS, llm_arms

    assert {"llama-cpp-f32", "llama-cpp-bf16"} <= set(BENCHMARK_ARMS)
    _hide_llama_cpp(monkeypatch, present=False)
    arms = {a.name: a for a in llm_arms(["llama-cpp-f32", "llama-cpp-bf16"], compile=False)}
    assert arms["llama-cpp-f32"].skip_reason == llama_cpp.INSTALL and "make llama-cpp" in llama_cpp.INSTALL
    assert arms["llama-cpp-bf16"].skip_reason == llama_cpp.INSTALL
    _hide_llama_cpp(monkeypatch, present=True)
    monkeypatch.setenv("WORKBENCH_LLAMA_CPP_CONVERTER", str(tmp_path / "missing" / "convert_hf_to_gguf.py"))
    reason = llm_arms(["llama-cpp-f32"], compile=False)[1].skip_reason
    assert "converter not found" in reason and "WORKBENCH_LLAMA_CPP_CONVERTER" in reason
    script = tmp_path / "convert_hf_to_gguf.py"
    script.write_text("")
    monkeypatch.setenv("WORKBENCH_LLAMA_CPP_CONVERTER", str(script))
    assert llama_cpp.converter_path() == script and llama_cpp.unavailable() is None
    assert "batch 1 only (this run: batch 8)" in llm_arms(["llama-cpp-f32"], compile=False, batch=8)[1].skip_reason


def test_export_refuses_a_tokenizer_larger_than_the_vocabulary(tmp_path, monkeypatch):
    from transformers import LlamaConfig, LlamaForCausalLM

    from workbench.tasks.causal_lm import DEMO_TARGET_DIR

    script = tmp_path / "convert_hf_to_gguf.py"
    script.write_text("")
    monkeypatch.setenv("WORKBENCH_LLAMA_CPP_CONVERTER", str(script))
    model = LlamaForCausalLM(LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                         intermediate_size=64, vocab_size=512))
    with pytest.raises(ValueError, match="has 4096 ids but the model's vocabulary is 512"):
        llama_cpp.export_gguf(model, DEMO_TARGET_DIR, tmp_path / "g")
    with pytest.raises(ValueError, match="outtype"):
        llama_cpp.export_gguf(model, DEMO_TARGET_DIR, tmp_path / "g", outtype="q3")
    assert not (tmp_path / "g").exists()


@pytest.mark.slow   # llama.cpp's converter in its own interpreter, then llama.cpp itself
@pytest.mark.skipif(llama_cpp.unavailable() is not None, reason=str(llama_cpp.unavailable()))
def test_llama_cpp_arm_gives_hf_greedy_tokens_and_scores_through_its_own_logits(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from workbench.arms.llm import BASELINE, decode_context, llm_arms

    torch.manual_seed(0)   # the demo tokenizer's 4096 ids: the model's vocabulary must hold them
    model = LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, intermediate_size=128, vocab_size=4096,
                                         max_position_embeddings=64)).eval()
    ctx = decode_context(model, prompt=6, new=5, compile=False, quality_seqs=2, threads=1, out=tmp_path)
    by = {a.name: a for a in llm_arms(["llama-cpp-f32"], compile=False)}
    hf, cpp = by[BASELINE].build(ctx), by["llama-cpp-f32"].build(ctx)
    try:
        mine, ref = cpp.call(), hf.call()
        assert mine.tokens.shape == (1, 11) and torch.equal(mine.tokens, ref.tokens)   # f32: HF's greedy tokens
        assert len(mine.emit_times) == 5 and mine.start < mine.emit_times[0]
        again = cpp.call()                     # the cache starts empty again: same request, same tokens
        assert torch.equal(again.tokens, mine.tokens)
        q = cpp.quality()
        assert "llama.cpp's own logits" in q.extra["scored_by"] and q.n_examples == 2 * 9   # 2 x (min(64, 10) - 1)
        assert q.value == 100.0 and q.extra["kl_vs_fp32"] < 1e-3
        assert cpp.meta["gguf_bytes"] > 4 * 4096 * 64 and (tmp_path / "llama-cpp-f32" / "model.gguf").is_file()
    finally:
        cpp.release()
