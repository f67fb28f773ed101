"""Speculative decoding engine: lossless greedy, distribution-preserving sampling, cache rollback, bad input."""
import copy
import itertools
import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from workbench.decoding.drafters import ModelDrafter, PromptLookupDrafter, make_drafter
from workbench.decoding.speculative import SpecConfig, autoregressive_generate, speculative_generate
from workbench.tasks.causal_lm import DEMO_DRAFT_DIR, DEMO_TARGET_DIR


def tiny_lm(vocab=64, embd=64, layers=2, seed=0, init=0.3, positions=128):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_embd=embd, n_layer=layers, n_head=2, n_positions=positions,
                     initializer_range=init)   # a wide init gives peaked, non-degenerate next-token distributions
    return GPT2LMHeadModel(cfg).eval()


def perturbed(model, scale, seed=1):
    """A draft that agrees with ``model`` often but not always: exercises full accepts and rollbacks."""
    out = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * p.std() * torch.randn(p.shape, generator=gen))
    return out


def hf_greedy(model, ids, n):
    return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                          eos_token_id=None, pad_token_id=0)


@pytest.fixture(scope="module")
def pair():
    target = tiny_lm()
    return target, perturbed(target, 0.1), tiny_lm(embd=32, layers=1, seed=2)


@pytest.mark.parametrize("gamma", [1, 3, 6])
def test_greedy_identical_to_target_on_many_prompts(pair, gamma):
    target, close_draft, far_draft = pair
    drafters = [ModelDrafter(close_draft, target), ModelDrafter(far_draft, target), PromptLookupDrafter()]
    gen = torch.Generator().manual_seed(gamma)
    accepted = 0
    for i in range(12):
        ids = torch.randint(0, 64, (1, 5 + i), generator=gen)
        ref, _ = autoregressive_generate(target, ids, 30)
        assert torch.equal(ref, hf_greedy(target, ids, 30))   # our baseline loop is HF's greedy decoding
        for drafter in drafters:
            out, stats = speculative_generate(target, drafter, ids, gamma=gamma, max_new_tokens=30)
            assert torch.equal(out, ref), (type(drafter).__name__, i)
            assert stats.new_tokens == 30 and len(stats.accept_lengths) == stats.target_calls
            assert sum(stats.accept_lengths) == stats.accepted <= stats.proposed <= gamma * stats.target_calls
            accepted += stats.accepted
    assert accepted > 0   # the rollback path and the accept path both ran


def test_draft_equal_to_target_accepts_everything():
    target = tiny_lm()
    ids = torch.randint(0, 64, (1, 8), generator=torch.Generator().manual_seed(0))
    out, stats = speculative_generate(target, ModelDrafter(target), ids, gamma=4, max_new_tokens=25)
    assert stats.alpha == 1.0 and stats.target_calls == 5   # 5 rounds x (4 drafted + 1 bonus) = 25 tokens
    assert torch.equal(out, autoregressive_generate(target, ids, 25)[0])


def test_kv_cache_off_gives_the_same_tokens(pair):
    target = pair[0]
    ids = torch.randint(0, 64, (1, 6), generator=torch.Generator().manual_seed(3))
    on, s_on = autoregressive_generate(target, ids, 12)
    off, s_off = autoregressive_generate(target, ids, 12, use_cache=False)
    assert torch.equal(on, off) and s_on.target_calls == s_off.target_calls == 12


def test_eos_stops_generation(pair):
    target, close_draft, _ = pair
    ids = torch.randint(0, 64, (1, 6), generator=torch.Generator().manual_seed(4))
    ref, _ = autoregressive_generate(target, ids, 20)
    eos = int(ref[0, 6 + 7])   # the 8th generated token
    out, _ = speculative_generate(target, ModelDrafter(close_draft), ids, gamma=4, max_new_tokens=20, eos_token_id=eos)
    first = int((ref[0, 6:] == eos).nonzero()[0]) + 6
    assert torch.equal(out, ref[:, :first + 1])


def test_prompt_lookup_copies_the_continuation_of_the_last_ngram():
    seq = torch.tensor([5, 1, 2, 3, 9, 8, 1, 2, 3, 0, 0])
    tokens, q = PromptLookupDrafter(max_ngram=3).propose(seq, n=9, k=3)
    assert tokens.tolist() == [9, 8, 1] and q is None
    assert PromptLookupDrafter().propose(torch.tensor([1, 2, 3, 4]), n=4, k=3)[0].numel() == 0   # no match


def exact_joint(target, prompt, n_new, vocab, temperature):
    """p(x1..xn | prompt) for every continuation, by enumeration (tiny vocabulary)."""
    conts = torch.tensor(list(itertools.product(range(vocab), repeat=n_new)))
    seqs = torch.cat([prompt.expand(len(conts), -1), conts], 1)
    with torch.no_grad():
        logp = torch.log_softmax(target(seqs).logits.double() / temperature, -1)
    p0 = prompt.shape[1]
    steps = logp[:, p0 - 1:p0 - 1 + n_new].gather(-1, conts[..., None])[..., 0]
    return {tuple(c.tolist()): float(p) for c, p in zip(conts, steps.sum(1).exp())}


def chi2_critical(df, z=3.09):   # Wilson-Hilferty approximation of the 0.999 quantile
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.mark.parametrize("drafter_kind,temperature", [("draft-model", 1.0), ("draft-model", 0.7), ("prompt-lookup", 1.0)])
def test_sampling_preserves_the_target_distribution(drafter_kind, temperature):
    vocab, n_new, n_samples = 4, 3, 2000
    target, draft = tiny_lm(vocab, 16, 1, seed=0), tiny_lm(vocab, 16, 1, seed=7)
    prompt = torch.tensor([[0, 1, 2, 0, 1]])
    exact = exact_joint(target, prompt, n_new, vocab, temperature)
    drafter = make_drafter(SpecConfig(drafter=drafter_kind), draft, target)
    gen = torch.Generator().manual_seed(0)
    counts = dict.fromkeys(exact, 0)
    rejected = 0
    for _ in range(n_samples):
        out, stats = speculative_generate(target, drafter, prompt, gamma=2, temperature=temperature,
                                          max_new_tokens=n_new, generator=gen)
        counts[tuple(out[0, -n_new:].tolist())] += 1
        rejected += stats.rejections
    assert rejected > n_samples / 10   # the draft disagrees often enough for the rule to matter
    # chi-square over cells with expected count >= 5 (the rest pooled into one cell)
    big = [k for k, p in exact.items() if p * n_samples >= 5]
    obs = [counts[k] for k in big] + [n_samples - sum(counts[k] for k in big)]
    exp = [exact[k] * n_samples for k in big] + [n_samples * (1 - sum(exact[k] for k in big))]
    chi2 = sum((o - e) ** 2 / e for o, e in zip(obs, exp) if e > 0)
    assert chi2 < chi2_critical(len(obs) - 1), f"chi2={chi2:.1f} over {len(obs)} cells"


def test_bad_input_gives_clear_errors(pair):
    target = pair[0]
    ids = torch.randint(0, 64, (1, 8))
    with pytest.raises(ValueError, match="vocabulary"):
        ModelDrafter(tiny_lm(vocab=80), target)
    with pytest.raises(ValueError, match="gamma"):
        speculative_generate(target, PromptLookupDrafter(), ids, gamma=0)
    with pytest.raises(ValueError, match="gamma"):
        SpecConfig(gamma=0)
    with pytest.raises(ValueError, match="context of 128 tokens"):
        speculative_generate(target, PromptLookupDrafter(), torch.zeros(1, 120, dtype=torch.long), max_new_tokens=16)
    with pytest.raises(ValueError, match="batch"):
        speculative_generate(target, PromptLookupDrafter(), torch.zeros(2, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="needs a draft model"):
        make_drafter(SpecConfig(), None)


@pytest.mark.skipif(not (DEMO_TARGET_DIR / "config.json").exists() or not (DEMO_DRAFT_DIR / "config.json").exists(),
                    reason="demo LMs not trained yet (python -m workbench.assets.train_demo_models --only lm)")
def test_greedy_identical_on_demo_pair():
    from workbench.tasks import get_task

    task = get_task("causal-lm")
    target, draft = task.load_model(), task.load_draft()
    drafter = ModelDrafter(draft, target)
    kept = 0
    for ids in task.prompts(n=16, prompt_tokens=24):
        ref, _ = autoregressive_generate(target, ids, 32)
        out, stats = speculative_generate(target, drafter, ids, gamma=4, max_new_tokens=32)
        assert torch.equal(out, ref)
        kept += stats.accepted
    assert kept > 16 * 32 * 0.2   # the trained draft really predicts the target (alpha well above chance)
