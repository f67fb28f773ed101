"""Speculative decoding on the fast loop: greedy tokens identical to the target's own greedy decoding (eager and
compiled, GPT-2 and Llama shapes), acceptance accounting, one graph per compiled call, EOS stop, bad input."""
import math

import pytest
import torch
from tiny_lms import perturbed, tiny_gpt2, tiny_llama

from workbench.decoding.fast_loop import FastDecoder, hf_generate
from workbench.decoding.fast_speculative import FastSpeculativeDecoder


def prompt(length, seed):
    return torch.randint(1, 64, (1, length), generator=torch.Generator().manual_seed(seed))


def check_accounting(stats, gamma, new_tokens):
    rounds = stats.target_calls
    assert stats.new_tokens == new_tokens
    assert len(stats.accept_lengths) == len(stats.proposal_lengths) == rounds
    assert stats.proposal_lengths == [gamma] * rounds and stats.proposed == gamma * rounds
    assert stats.draft_calls == gamma * rounds                     # draft forward passes, gamma per round
    assert sum(stats.accept_lengths) == stats.accepted and all(0 <= k <= gamma for k in stats.accept_lengths)
    assert stats.rejections == sum(k < gamma for k in stats.accept_lengths)
    start, times, counts = stats.requests[0]
    # the first token comes from the target's prefill; each round then emits its kept drafts + 1 as one chunk
    assert counts[0] == 1 and sum(counts) == new_tokens and len(counts) == rounds + 1
    assert start < times[0] and times == sorted(times)
    # rounds: all but the last emit exactly kept + 1 (the last may be cut at max_new_tokens)
    assert counts[1:-1] == [k + 1 for k in stats.accept_lengths[:-1]]


@pytest.mark.parametrize("make", [tiny_gpt2, tiny_llama])
def test_eager_static_loop_gives_the_target_greedy_tokens(make):
    target = make()
    far = make(layers=1, hidden=32, seed=5) if make is tiny_llama else make(layers=1, embd=32, seed=5)
    ids = [prompt(5, seed=0), prompt(11, seed=1)]   # a new prompt length on the second call: caches reused, reset
    refs = [hf_generate(target, p, 16).tokens for p in ids]
    accepted = rejected = 0
    for gamma, draft in ((1, perturbed(target)), (3, perturbed(target)), (3, far)):
        spec = FastSpeculativeDecoder(target, draft, gamma=gamma, max_cache_len=40, compile=False)
        assert spec.supported and not spec.compiled and "eager" in spec.label
        for p, ref in zip(ids, refs):
            out, stats = spec.generate(p, 16)
            assert torch.equal(out, ref), (gamma, p.shape)
            check_accounting(stats, gamma, 16)
            accepted, rejected = accepted + stats.accepted, rejected + stats.rejections
    assert accepted > 0 and rejected > 0   # both the full-accept and the rejection paths ran


def test_draft_equal_to_target_accepts_every_draft():
    target = tiny_gpt2()
    spec = FastSpeculativeDecoder(target, target, gamma=4, max_cache_len=40, compile=False)
    out, stats = spec.generate(prompt(8, 0), 26)
    # the prefill makes token 1; 5 rounds x (4 drafts + 1) make the other 25
    assert stats.alpha == 1.0 and stats.target_calls == 5 and stats.accept_lengths == [4] * 5
    assert torch.equal(out, hf_generate(target, prompt(8, 0), 26).tokens)


def test_last_round_overshoot_is_dropped():
    target = tiny_gpt2()
    spec = FastSpeculativeDecoder(target, target, gamma=4, max_cache_len=40, compile=False)
    out, stats = spec.generate(prompt(8, 0), 8)   # 1 + 5 + 5 tokens made, 8 kept
    assert out.shape == (1, 16) and stats.new_tokens == 8 and stats.target_calls == 2
    assert torch.equal(out, hf_generate(target, prompt(8, 0), 8).tokens)


def test_eos_stops_after_the_eos_token():
    target = tiny_gpt2()
    ids = prompt(6, 3)
    ref = hf_generate(target, ids, 30).tokens
    eos = int(ref[0, 6 + 9])   # a token the target really emits as its 10th new token
    first = int((ref[0, 6:] == eos).nonzero()[0]) + 1
    spec = FastSpeculativeDecoder(target, perturbed(target), gamma=3, max_cache_len=60, compile=False)
    out, stats = spec.generate(ids, 30, eos_token_id=eos)
    assert torch.equal(out, ref[:, :6 + first]) and stats.new_tokens == first
    assert sum(stats.requests[0][2]) == first


@pytest.mark.slow
def test_compiled_gives_the_target_greedy_tokens_with_one_graph_per_call():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    target = tiny_llama(seed=2)
    draft = perturbed(target, 0.2)
    spec = FastSpeculativeDecoder(target, draft, gamma=3, max_cache_len=64, cpp_wrapper=True)   # C++ calls: same tokens
    eager = FastDecoder(target, max_batch_size=1, max_cache_len=64, compile=False)   # its tokens: the compiled one's
    for i, length in enumerate((7, 12)):   # a new prompt length and positions on the second call: no new graph
        ids = prompt(length, seed=10 + i)
        out, stats = spec.generate(ids, 24)
        assert spec.compiled, spec.reason
        assert torch.equal(out, eager.generate(ids, 24).tokens)
        check_accounting(stats, 3, 24)
        assert stats.draft_seconds > 0 and stats.target_seconds > 0 and stats.target_prefill_seconds > 0
        if i == 0:
            graphs = counters["stats"]["unique_graphs"]
    assert spec.frozen and "compiled draft round + verify, frozen weights, C++ wrapper" in spec.label
    assert spec.compile_seconds > 0
    assert counters["stats"]["unique_graphs"] == graphs == 2   # the draft round and the verify


def test_step_options_reach_both_compiled_calls_and_the_template_needs_frozen_weights(monkeypatch):
    """``cpp_wrapper`` / ``gemm_template`` (FastDecoder's options) go to the draft round's and the verify's compile;
    the template packs constant weights, so without freezing (or compiling) it is off. The compile is stood in for by
    the plain bound function: what is checked is what each call was compiled with, and the tokens."""
    import types

    from workbench.decoding import fast_speculative

    seen = []

    def plain(fn, owner, name, device, frozen, gemv=False, cpp_wrapper=False, gemm_template=False):
        seen.append((name, frozen, cpp_wrapper, gemm_template))
        return types.MethodType(fn, owner)

    monkeypatch.setattr(fast_speculative, "compile_private", plain)
    target = tiny_llama(seed=3)
    spec = FastSpeculativeDecoder(target, perturbed(target), gamma=2, max_cache_len=32, cpp_wrapper=True,
                                  gemm_template=True)
    out, _ = spec.generate(prompt(5, 0), 6)
    assert seen == [("draft_round_g2", True, True, True), ("verify_g2", True, True, True)]
    assert "frozen weights, autotuned C++ GEMM template, C++ wrapper" in spec.label
    assert torch.equal(out, hf_generate(target, prompt(5, 0), 6).tokens)
    for off in (dict(freeze=False), dict(compile=False)):
        assert not FastSpeculativeDecoder(target, target, gamma=2, max_cache_len=32, gemm_template=True,
                                          **off).gemm_template


def test_bad_input_is_named():
    target = tiny_gpt2(positions=64)
    with pytest.raises(ValueError, match="gamma"):
        FastSpeculativeDecoder(target, target, gamma=0, max_cache_len=32)
    with pytest.raises(ValueError, match="context of 64 tokens.*lower max_cache_len to 60"):
        FastSpeculativeDecoder(target, target, gamma=4, max_cache_len=64)
    other = tiny_gpt2(layers=1, embd=32, vocab=80, positions=64)
    with pytest.raises(ValueError, match="vocabulary"):
        FastSpeculativeDecoder(target, other, gamma=2, max_cache_len=32)
    spec = FastSpeculativeDecoder(target, target, gamma=2, max_cache_len=32, compile=False)
    with pytest.raises(ValueError, match="max_cache_len=32"):
        spec.generate(prompt(20, 0), 20)
    assert math.isnan(spec.generate(prompt(4, 0), 1)[1].alpha)   # one token: only the prefill ran, nothing tested
