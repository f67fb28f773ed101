"""benchmarks/speculative.py on tiny random models: every arm does the same decode work, and the JSON says which
draft forward its headline speedup uses (the engine with the plain HF forward, beside the lean GPT-2 one)."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from workbench.decoding.speculative import autoregressive_generate

pytestmark = pytest.mark.integration  # starts benchmarks/speculative.py

HEADLINE_KEYS = ("identical", "speedup_vs_target", "speedup_vs_hf_assisted", "predicted_speedup", "alpha", "c", "gamma")


def tiny_lm(seed, layers):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=64, n_embd=32, n_layer=layers, n_head=2, n_positions=128, initializer_range=0.3,
                     bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(scope="module")
def result(benchmark_module):
    bench = benchmark_module("speculative")
    target, draft = tiny_lm(0, 2), tiny_lm(0, 1)   # same seed: the 1-layer draft shares the target's embeddings
    gen = torch.Generator().manual_seed(2)
    prompts = [torch.randint(1, 64, (1, 10), generator=gen) for _ in range(2)]
    # EOS = a token the target really emits midway through the first prompt, so stopping at EOS is exercised
    eos = int(autoregressive_generate(target, prompts[0], 12)[0][0, 10 + 4])
    return bench, bench.run_benchmark(target, draft, prompts, eos, gamma=3, n_new=12, repeats=1), eos


def test_every_arm_does_the_same_decode_work(result):
    """Item 5 (#12): same EOS handling (all stop at EOS), same max_new_tokens, same outputs, so the same number of
    new tokens; what differs (loop overhead class, EOS cut of drafts, HF's default draft length) is stated per arm."""
    _bench, out, _eos = result
    arms = set(out["tokens_per_s"])
    assert out["same_new_tokens"] is True and len(set(out["new_tokens"].values())) == 1
    assert sum(out["new_tokens"].values()) < len(arms) * 2 * 12   # the EOS stop really cut a generation short
    assert all(out["identical_per_arm"].values()) and out["identical"] is True
    assert set(out["decode_notes"]) == arms and "stops at EOS" in out["same_work"]
    assert "HF generate loop" in out["decode_notes"]["hf-generate"] and "own lean loop" in out["decode_notes"]["own-loop"]


def test_headline_uses_the_engine_with_the_plain_hf_draft_forward(result):
    """Item 7 (#12): an arm with the plain HF draft forward beside the lean GPT-2 one; the JSON names the forward
    its headline speedup uses, and the headline figures are that arm's."""
    bench, out, _eos = result
    assert {"spec-draft-hf", "spec-draft-lean"} <= set(out["tokens_per_s"])
    assert out["headline_draft_forward"] == "hf" and out["headline_arm"] == "spec-draft-hf"
    assert out["draft_forwards"] == {"spec-draft-hf": "hf", "spec-draft-lean": "lean-gpt2"}
    for key in HEADLINE_KEYS:
        assert key in out
    tps = out["tokens_per_s"]
    target = max(tps["hf-generate"], tps["own-loop"])
    assert out["speedup_vs_target"] == pytest.approx(tps["spec-draft-hf"] / target, rel=0.02)
    assert out["lean_speedup_vs_target"] == pytest.approx(tps["spec-draft-lean"] / target, rel=0.02)
    assert out["speedup_vs_hf_assisted"] == pytest.approx(
        tps["spec-draft-hf"] / max(tps["hf-assisted"], tps["hf-assisted-gamma"]), rel=0.02)
    assert out["c"] > 0 and out["lean_c"] > 0 and out["gamma"] == 3
    assert set(out["prefill_ms"]) == set(bench.OWN_ARMS) and all(v > 0 for v in out["prefill_ms"].values())
