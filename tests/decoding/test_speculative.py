"""Speculative decoding engine: lossless greedy, distribution-preserving sampling, cache rollback, bad input."""
import copy
import itertools
import math
import sys
from pathlib import Path

import pytest
import torch
from tiny_lms import perturbed, tiny_gpt2
from torch.overrides import TorchFunctionMode

import workbench.decoding
from workbench.decoding.drafters import ModelDrafter, PromptLookupDrafter, make_drafter
from workbench.decoding.speculative import SpecConfig, autoregressive_generate, speculative_generate
from workbench.tasks.causal_lm import DEMO_DRAFT_DIR, DEMO_TARGET_DIR


def hf_greedy(model, ids, n):
    return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                          eos_token_id=None, pad_token_id=0)


@pytest.fixture(scope="module")
def pair():
    target = tiny_gpt2()
    return target, perturbed(target, 0.1), tiny_gpt2(embd=32, layers=1, seed=2)


@pytest.mark.slow  # 50-70 s of CPU per gamma on 2 cores
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
    target = tiny_gpt2()
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


@pytest.mark.slow  # 6-8 s a case here (2000 samples took 14-20 s)
@pytest.mark.parametrize("drafter_kind,temperature", [("draft-model", 1.0), ("draft-model", 0.7), ("prompt-lookup", 1.0)])
def test_sampling_preserves_the_target_distribution(drafter_kind, temperature):
    # 1200 samples: a rule that keeps the draft's token on rejection, or skips the residual resample, moves whole
    # cells by tens of percent, far beyond the 0.999 chi-square bound at this size
    vocab, n_new, n_samples = 4, 3, 1200
    target, draft = tiny_gpt2(1, 16, seed=0, vocab=vocab), tiny_gpt2(1, 16, seed=7, vocab=vocab)
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
        ModelDrafter(tiny_gpt2(vocab=80), target)
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
@pytest.mark.slow  # 60 s of CPU here
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


class VirtualClock:
    """Time that moves only when a model runs: a forward over T tokens costs ``base + per_token * T`` seconds.

    Stands in for ``time`` in :mod:`workbench.decoding.lm` (the engine's clock), so every phase's time is known
    exactly; ``fed[model]`` lists the T of each of that model's forward calls, in order.
    """

    def __init__(self):
        self.now, self.fed, self.handles = 0.0, {}, []

    def perf_counter(self):
        return self.now

    def charge(self, model, base, per_token):
        self.fed[model] = []

        def hook(module, args, kwargs):
            t = kwargs["input_ids"].shape[-1]
            self.fed[model].append(t)
            self.now += base + per_token * t

        self.handles.append(model.register_forward_pre_hook(hook, with_kwargs=True))

    def remove(self):
        for h in self.handles:
            h.remove()


def test_prefill_is_timed_apart_from_decode(pair, monkeypatch):
    """Item 1 (#12): the prompt's forward is prefill, not a decode step, for the target, the draft and each arm."""
    import workbench.decoding.lm as lm
    import workbench.decoding.speculative as spec

    target, close_draft, _ = pair
    clock = VirtualClock()
    monkeypatch.setattr(lm, "time", clock, raising=False)
    monkeypatch.setattr(spec, "time", clock, raising=False)   # the clock's old home, so old code runs on it too
    clock.charge(target, 1.0, 0.1)
    clock.charge(close_draft, 0.1, 0.01)
    try:
        p, n_new = 40, 10
        ids = torch.randint(0, 64, (1, p), generator=torch.Generator().manual_seed(5))
        _, base = autoregressive_generate(target, ids, n_new)
        assert clock.fed[target] == [p - 1] + [1] * n_new            # one prefill call, then 1 token per step
        assert base.target_prefill_seconds == pytest.approx(1.0 + 0.1 * (p - 1))
        assert base.target_calls == n_new
        assert base.target_seconds == base.decode_seconds == pytest.approx(n_new * 1.1)
        assert base.tokens_per_s == pytest.approx(n_new / (n_new * 1.1))
        assert base.e2e_tokens_per_s == pytest.approx(n_new / (n_new * 1.1 + 1.0 + 0.1 * (p - 1)))

        clock.fed[target].clear()
        _, s = speculative_generate(target, ModelDrafter(close_draft, target, lean=False), ids, gamma=3,
                                    max_new_tokens=n_new)
        t_fed, d_fed = clock.fed[target], clock.fed[close_draft]
        assert t_fed[0] == d_fed[0] == p - 1                          # each model's prefill: the prompt but its last
        assert s.target_prefill_seconds == pytest.approx(1.0 + 0.1 * (p - 1))
        assert s.draft_prefill_seconds == pytest.approx(0.1 + 0.01 * (p - 1))
        assert s.target_calls == len(t_fed) - 1 and s.draft_calls == len(d_fed) - 1
        assert s.target_seconds == pytest.approx(sum(1.0 + 0.1 * t for t in t_fed[1:]))
        assert s.draft_seconds == pytest.approx(sum(0.1 + 0.01 * t for t in d_fed[1:]))
        assert max(d_fed[1:]) <= 2 and max(t_fed[1:]) <= 3 + 1       # decode calls never carry the prompt
        assert s.decode_seconds == pytest.approx(s.target_seconds + s.draft_seconds)
        assert s.seconds == pytest.approx(s.decode_seconds + s.prefill_seconds)
        assert s.tokens_per_s == pytest.approx(n_new / s.decode_seconds)
    finally:
        clock.remove()


DECODING_DIR = str(Path(workbench.decoding.__file__).parent)
HOST_COPIES = {"item", "cpu", "tolist", "numpy", "__int__", "__float__", "__bool__", "__index__", "__array__"}
FACTORIES = {"empty", "zeros", "ones", "full", "arange", "rand", "randn", "randint", "tensor", "eye", "linspace"}


class DecodeWatch(TorchFunctionMode):
    """Records, for calls made from ``workbench/decoding`` code: every copy to the host (``.item()``, ``int(t)``,
    ``.cpu()``, ``.tolist()``, ...) with the dtype copied, and every new tensor made without naming a device."""

    def __init__(self):
        super().__init__()
        self.host, self.no_device = [], []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        frame = sys._getframe(1)
        if frame.f_code.co_filename.startswith(DECODING_DIR):
            where = f"{frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.f_lineno}"
            name = getattr(func, "__name__", "")
            to_host = name == "to" and any(str(a) == "cpu" for a in list(args[1:]) + list(kwargs.values()))
            if (name in HOST_COPIES or to_host) and isinstance(args[0], torch.Tensor):
                self.host.append((name, args[0].dtype, where))
            if name in FACTORIES and "device" not in kwargs:
                self.no_device.append((name, where))
        return func(*args, **kwargs)


def test_decode_loop_copies_only_token_ids_to_the_host_and_builds_on_the_model_device(pair):
    """Item 6 (#12): inside the timed loops no logits/probabilities reach the host (argmax and sampling happen on
    the device; only token ids and counts are read), and every tensor the engine makes is put on the model's device."""
    target, close_draft, _ = pair
    ids = torch.randint(0, 64, (1, 9), generator=torch.Generator().manual_seed(6))
    eos = int(autoregressive_generate(target, ids, 12)[0][0, 9 + 5])
    with DecodeWatch() as watch:
        autoregressive_generate(target, ids, 12, eos_token_id=eos)
        autoregressive_generate(target, ids, 8, use_cache=False)
        autoregressive_generate(target, ids, 8, temperature=0.7, generator=torch.Generator().manual_seed(0))
        for drafter in (ModelDrafter(close_draft, target), ModelDrafter(close_draft, target, lean=False),
                        PromptLookupDrafter()):   # made inside the watch: their caches count too
            for temperature in (0.0, 0.8):
                speculative_generate(target, drafter, ids, gamma=3, temperature=temperature, max_new_tokens=12,
                                     eos_token_id=eos, generator=torch.Generator().manual_seed(1))
    floats = [h for h in watch.host if h[1].is_floating_point or h[1].is_complex]
    assert not floats, f"logits or probabilities copied to the host: {floats}"
    assert watch.host, "the watch saw nothing: it is not hooked into the engine"
    assert not watch.no_device, f"tensors made without the model's device: {watch.no_device}"


@pytest.mark.gpu
def test_engine_runs_on_cuda(pair):
    """Item 6 (#12) on a GPU: sequences, drafts and verification stay on the model's device; greedy is still lossless."""
    target, close_draft, _ = pair
    t_gpu, d_gpu = copy.deepcopy(target).cuda(), copy.deepcopy(close_draft).cuda()
    ids = torch.randint(0, 64, (1, 7), generator=torch.Generator().manual_seed(7))
    ref, base = autoregressive_generate(t_gpu, ids, 20)
    assert ref.device.type == "cuda" and base.decode_seconds > 0
    for drafter in (ModelDrafter(d_gpu, t_gpu), ModelDrafter(d_gpu, t_gpu, lean=False), PromptLookupDrafter()):
        out, stats = speculative_generate(t_gpu, drafter, ids, gamma=3, max_new_tokens=20)
        assert out.device.type == "cuda" and torch.equal(out, ref)
        assert stats.decode_seconds > 0 and stats.target_prefill_seconds > 0
        out, _ = speculative_generate(t_gpu, drafter, ids, gamma=3, temperature=0.8, max_new_tokens=20,
                                      generator=torch.Generator(device="cuda").manual_seed(0))
        assert out.device.type == "cuda" and out.shape == ref.shape
    with pytest.raises(ValueError, match="move the draft"):
        ModelDrafter(close_draft, t_gpu)
