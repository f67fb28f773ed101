"""Prefix caching: the reused prefix KV gives the full prefill's logits, and skipping the prefix is cheaper."""
import pytest
import torch

from workbench.measure.prefix_cache import PrefixMismatch, PrefixTrial, prefix_cache_trial


@pytest.fixture(scope="module")
def llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                        num_attention_heads=4, max_position_embeddings=1024)).eval()


def test_reused_prefix_matches_full_prefill_and_costs_less(llama):
    out = prefix_cache_trial(llama, PrefixTrial(prefix_len=384, suffix_len=8, n_requests=3))
    assert out["max_abs_logit_diff"] < 1e-4 and out["n_requests"] == 3
    assert out["prompt_tokens_computed_full"] == 392 and out["prompt_tokens_computed_reused"] == 8
    assert out["cached_share"] == pytest.approx(384 / 392, abs=1e-4)
    assert out["ttft_ratio"] == pytest.approx(out["ttft_ms_reused"] / out["ttft_ms_full"], rel=1e-3)
    assert out["ttft_ratio"] < 0.9        # 8 of 392 tokens computed: loose, the CPU is shared during tests


def test_a_wrong_cache_is_caught_and_bad_trials_rejected(llama, monkeypatch):
    import workbench.measure.prefix_cache as pc

    real = pc._prefill

    def shifted(model, ids, past=None):   # a cache bug: the suffix sees no prefix at all
        return real(model, ids, None) if past is not None else real(model, ids, past)

    monkeypatch.setattr(pc, "_prefill", shifted)
    with pytest.raises(PrefixMismatch, match="differ from the full prefill"):
        prefix_cache_trial(llama, PrefixTrial(prefix_len=32, suffix_len=4, n_requests=1))
    with pytest.raises(ValueError, match="prefix_len"):
        PrefixTrial(prefix_len=0)
