"""Greedy decoding and scoring through an int8 KV cache: the same tokens as the step's own greedy loop, one emission
per token, and teacher-forced logits that match a token-by-token decode."""
import torch
from tiny_lms import HF_INIT, tiny_gpt2

from workbench.decoding.kv_quant import quantized_cache_generate, quantized_cache_score


def test_generate_matches_the_int8_kv_greedy_loop_and_scores_its_own_tokens():
    from workbench.steps.kv_cache import greedy_generate

    model = tiny_gpt2(vocab=96, positions=64, init=HF_INIT)
    ids = torch.randint(0, 96, (1, 6), generator=torch.Generator().manual_seed(2))
    res = quantized_cache_generate(model, ids, 5, bits=8)
    assert torch.equal(res.tokens, greedy_generate(model, ids, 5, bits=8))
    assert len(res.emit_times) == 5 and res.emit_counts == [1] * 5
    assert res.start <= res.emit_times[0] and res.emit_times == sorted(res.emit_times)
    logits = quantized_cache_score(model, res.tokens, bits=8)
    assert logits.shape == (1, 10, 96)
    # fed one token at a time, the logits at the last 5 positions pick the greedy tokens the decode made
    assert torch.equal(logits[0, -5:].argmax(-1), res.tokens[0, -5:])
