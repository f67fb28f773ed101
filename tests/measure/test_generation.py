"""Generation scenario: the speedup model, a small real sweep over the demo target + draft, and the scenario's
figures on tiny random models under a clock and drafters the tests control."""
import itertools
import json
import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from workbench.decoding.drafters import make_drafter
from workbench.decoding.speculative import SpecConfig, autoregressive_generate, speculative_generate
from workbench.measure.generation import (GenerationTrial, break_even_alpha, measure_generation, predicted_speedup,
                                          spec_row)
from workbench.results import ResultsTable
from workbench.tasks.causal_lm import DEMO_DRAFT_DIR, DEMO_TARGET_DIR


def test_predicted_speedup_limits_and_break_even():
    assert predicted_speedup(0.0, 4, 0.1) == pytest.approx(1 / 1.4)            # every draft rejected: pure overhead
    assert predicted_speedup(1.0, 4, 0.1) == pytest.approx(5 / 1.4)            # every draft kept
    assert predicted_speedup(0.5, 1, 0.0) == pytest.approx(1.5)
    for gamma, c in [(1, 0.1), (4, 0.2), (8, 0.05)]:
        a = break_even_alpha(gamma, c)
        assert 0 < a < 1 and predicted_speedup(a, gamma, c) == pytest.approx(1.0, abs=1e-6)
    assert math.isnan(break_even_alpha(4, 1.5))   # a draft dearer than the target never pays off


def test_trial_rejects_bad_settings():
    with pytest.raises(ValueError, match="gamma"):
        GenerationTrial(gammas=(0, 2))
    with pytest.raises(ValueError, match="drafters"):
        GenerationTrial(drafters=("medusa",))
    with pytest.raises(ValueError, match="temperature"):
        GenerationTrial(temperatures=(-1.0,))


@pytest.mark.skipif(not (DEMO_TARGET_DIR / "config.json").exists() or not (DEMO_DRAFT_DIR / "config.json").exists(),
                    reason="demo LMs not trained yet (python -m workbench.assets.train_demo_models --only lm)")
@pytest.mark.slow  # 34 s of CPU here
def test_small_sweep_on_demo_pair_writes_rows(tmp_path):
    from workbench.tasks import get_task

    task = get_task("causal-lm")
    table = ResultsTable(tmp_path / "results.jsonl")
    trial = GenerationTrial(gammas=(1, 3), temperatures=(0.0, 1.0), n_prompts=2, prompt_tokens=16, max_new_tokens=16)
    rows = measure_generation(task, trial, table=table, progress=False)
    saved = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(saved) == len(rows) == 2 + 2 * 2 * 2 + 1   # plain per temperature, spec arms, kv-cache off
    plain = [r for r in rows if r["scenario"] == "generation-plain"]
    assert {(r["kv_cache"], r["temperature"]) for r in plain} == {(True, 0.0), (True, 1.0), (False, 0.0)}
    for row in (r for r in rows if r["scenario"] == "generation-speculative"):
        assert 0 <= row["alpha"] <= 1 and row["c"] > 0 and row["tokens_per_s"] > 0
        assert len(row["accept_hist"]) == row["gamma"] + 1 and sum(row["accept_hist"]) == row["target_calls"]
        assert row["tokens_per_target_call"] == pytest.approx(1 + row["mean_accepted_per_call"], abs=1e-3)
        assert row["predicted_speedup"] > 0
        if row["break_even_alpha"] is None:
            # no alpha pays for the round: even alpha = 1 yields E[K] + 1 tokens per round for m c + v steps (v: the
            # verify call's measured cost), and the drafter proposes fewer tokens per round than that cost less 1
            cost = row["draft_calls_per_round"] * row["c"] + row["verify_cost_steps"]
            assert row["mean_proposed_per_round"] < cost - 1 + 1e-3
        else:
            assert 0 <= row["break_even_alpha"] <= 1
        # greedy must reproduce the target's own output; sampling has no such check
        assert row["identical"] is (True if row["temperature"] == 0 else None)


# ---- tiny models: the generation scenario's own figures, checked against a clock and drafters we control ----------

def tiny_lm(vocab=64, embd=32, layers=1, seed=0, positions=512, activation="gelu_new"):
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab, n_embd=embd, n_layer=layers, n_head=2, n_positions=positions,
                     initializer_range=0.3, activation_function=activation)
    return GPT2LMHeadModel(cfg).eval()


class TinyTask:
    """The little a generation sweep asks of a task when target and draft are given: a name and prompts."""

    name, kind, generates_text = "tiny-lm", "causal-lm", True

    def prompts(self, n, prompt_tokens):
        gen = torch.Generator().manual_seed(11)
        return [torch.randint(0, 64, (1, prompt_tokens), generator=gen) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_pair():
    return tiny_lm(), tiny_lm(seed=3)


class FakeTime:
    """``time`` for :mod:`workbench.decoding.lm` whose clock is driven by ``tick()`` (constant, backwards, ...)."""

    def __init__(self, tick):
        self.tick = tick

    def perf_counter(self):
        return self.tick()


def test_c_and_rates_exclude_prefill(monkeypatch):
    """Item 1 (#12): c = draft decode call / target decode step, neither counting the prompt's forward; prefill is
    reported apart (ms per prompt), tokens/s is over decode time, end-to-end tokens/s is its own column."""
    import workbench.decoding.lm as lm
    import workbench.decoding.speculative as speculative

    target, draft = tiny_lm(layers=2), tiny_lm(seed=3, activation="relu")   # relu: the draft runs its HF forward
    now, fed = [0.0], {"target": [], "draft": []}
    fake = FakeTime(lambda: now[0])
    monkeypatch.setattr(lm, "time", fake, raising=False)
    monkeypatch.setattr(speculative, "time", fake, raising=False)   # the clock's old home

    def charge(model, name, base, per_token):   # a forward over T tokens takes base + per_token * T seconds
        def hook(module, args, kwargs):
            fed[name].append(kwargs["input_ids"].shape[-1])
            now[0] += base + per_token * kwargs["input_ids"].shape[-1]
        return model.register_forward_pre_hook(hook, with_kwargs=True)

    handles = [charge(target, "target", 1.0, 0.1), charge(draft, "draft", 0.2, 0.01)]
    try:
        p, n_new = 60, 12
        ids = TinyTask().prompts(1, p)[0]
        _, base = autoregressive_generate(target, ids, n_new)
        fed["target"].clear()
        _, stats = speculative_generate(target, make_drafter(SpecConfig(), draft, target), ids, 4, 0.0, n_new)
    finally:
        for h in handles:
            h.remove()
    row = spec_row(stats, base, None)
    draft_decode = [0.2 + 0.01 * t for t in fed["draft"][1:]]           # the first draft call is its prefill
    assert row["c"] == pytest.approx(sum(draft_decode) / len(draft_decode) / 1.1, abs=1e-4)
    target_prefill, draft_prefill = 1.0 + 0.1 * (p - 1), 0.2 + 0.01 * (p - 1)
    assert row["target_prefill_ms"] == pytest.approx(target_prefill * 1e3)
    assert row["draft_prefill_ms"] == pytest.approx(draft_prefill * 1e3)
    assert row["prefill_ms"] == pytest.approx((target_prefill + draft_prefill) * 1e3)
    decode = sum(draft_decode) + sum(1.0 + 0.1 * t for t in fed["target"][1:])
    assert row["decode_ms"] == pytest.approx(decode * 1e3)
    assert row["tokens_per_s"] == pytest.approx(n_new / decode, abs=0.01)
    assert row["e2e_tokens_per_s"] == pytest.approx(n_new / (decode + target_prefill + draft_prefill), abs=0.01)
    assert row["target_tokens_per_s"] == pytest.approx(1 / 1.1, abs=0.01)   # the target alone: 1.1 s per step
    assert row["speedup"] == pytest.approx((n_new / decode) * 1.1, abs=1e-3)


@pytest.mark.parametrize("clock", ["constant", "backwards"])
def test_zero_or_negative_decode_time_fails_the_point(tiny_pair, monkeypatch, clock):
    """Item 2 (#12): a decode time <= 0 marks the row failed, with the reason, instead of a huge tokens/s."""
    import workbench.decoding.lm as lm
    import workbench.decoding.speculative as speculative

    ticks = itertools.count(0.0, 0.0 if clock == "constant" else -1.0)
    fake = FakeTime(lambda: next(ticks))
    monkeypatch.setattr(lm, "time", fake, raising=False)
    monkeypatch.setattr(speculative, "time", fake, raising=False)   # the clock's old home
    target, draft = tiny_pair
    trial = GenerationTrial(gammas=(2,), n_prompts=1, prompt_tokens=8, max_new_tokens=4, kv_cache_off=False)
    rows = measure_generation(TinyTask(), trial, target=target, draft=draft, progress=False)
    assert len(rows) == 3
    for row in rows:
        assert row["failed"] is True and row["failure"] == "timing"
        assert "decode time" in row["error"] and "positive" in row["error"]
        assert "tokens_per_s" not in row and "speedup" not in row


def test_predicted_speedup_for_a_variable_proposal_length():
    """Item 3 (#12): E_K[(1 - a^(K+1)) / (1 - a)] / (m c + verify), K the proposal length of each round."""
    a, c = 0.5, 0.1
    # rounds proposing 0 and 2 tokens: 1 token and 1 + a + a^2 = 1.75 tokens; one drafter call per round (lookup)
    assert predicted_speedup(a, 4, c, proposals=[0, 2], draft_calls_per_round=1) == pytest.approx(1.375 / 1.1)
    # a model drafter: one call per drafted token, m = E[K] = 1
    assert predicted_speedup(a, 4, c, proposals=[0, 2]) == pytest.approx(1.375 / 1.1)
    assert predicted_speedup(a, 4, c, proposals={0: 3, 4: 1}) == pytest.approx((3 + (1 - a ** 5) / (1 - a)) / 4 / 1.1)
    # a constant proposal length is the textbook formula; the mean plugged into it would overstate (Jensen)
    assert predicted_speedup(a, 3, c, proposals=[3, 3]) == pytest.approx(predicted_speedup(a, 3, c))
    assert predicted_speedup(a, 4, c, proposals=[0, 2], draft_calls_per_round=1) < predicted_speedup(a, 1, c)
    # nothing proposed at all: one token per round whatever alpha (even unmeasured), at the cost of the lookups
    assert predicted_speedup(float("nan"), 4, 0.05, proposals=[0, 0], draft_calls_per_round=1) == pytest.approx(1 / 1.05)


class PatternDrafter:
    """Proposes ``pattern[i % len]`` tokens in round i (at most k); each is the target's own greedy token with
    probability ``alpha`` (independently), else a wrong one: the acceptance model behind the prediction, exactly."""

    def __init__(self, reference, pattern, alpha, seed=0):
        self.ref, self.pattern, self.alpha, self.calls = reference, pattern, alpha, 0
        self.rng = torch.Generator().manual_seed(seed)
        self.round = 0

    def reset(self):
        self.round = 0

    def propose(self, seq, n, k, temperature=0.0, generator=None):
        self.calls += 1
        size = min(self.pattern[self.round % len(self.pattern)], k)
        self.round += 1
        right = self.ref[n:n + size].clone()
        wrong = torch.rand(size, generator=self.rng) >= self.alpha
        return torch.where(wrong, (right + 1) % 64, right), None

    def rollback(self, n_valid):
        pass


def test_prediction_uses_the_proposals_actually_made(tiny_pair):
    """Item 3 (#12): with a drafter that proposes a known pattern of lengths (0 to gamma, like prompt lookup) the
    predicted tokens per round are the measured ones, not gamma's; the old formula assumed gamma every round."""
    target, _ = tiny_pair
    gamma, pattern, alpha = 4, [0, 1, 4, 2, 0], 0.6
    ids = TinyTask().prompts(1, 8)[0]
    n_new = 240
    ref, base = autoregressive_generate(target, ids, n_new)
    drafter = PatternDrafter(ref[0], pattern, alpha)
    out, stats = speculative_generate(target, drafter, ids, gamma, 0.0, n_new)
    assert torch.equal(out, ref)
    row = spec_row(stats, base, True)
    rounds = row["target_calls"]
    assert row["mean_proposed_per_round"] == pytest.approx(stats.proposed / rounds, abs=1e-4)
    assert row["mean_proposed_per_round"] == pytest.approx(sum(pattern) / len(pattern), abs=0.05)
    assert row["draft_calls_per_round"] == pytest.approx(1.0, abs=0.01)   # one call per round, like prompt lookup
    assert 0.5 < row["alpha"] < 0.7
    # the prediction's tokens per round, E_K[(1 - a^(K+1)) / (1 - a)], is what the rounds really yielded (within
    # 4 standard errors of their mean)
    tokens = row["predicted_speedup"] * (row["draft_calls_per_round"] * row["c"] + row["verify_cost_steps"])
    per_round = torch.tensor(stats.accept_lengths, dtype=torch.float64) + 1
    assert tokens == pytest.approx(row["tokens_per_target_call"], abs=4 * float(per_round.std()) / rounds ** 0.5)
    textbook = (1 - row["alpha"] ** (gamma + 1)) / (1 - row["alpha"])   # gamma proposed every round
    assert textbook > row["tokens_per_target_call"] + 0.4


def test_kv_cache_off_arm_runs_when_temperatures_exclude_greedy(tiny_pair):
    """Item 4 (#12): the KV-cache-off arm used to look for a greedy cached arm and raise KeyError (after measuring
    everything, so the sweep was lost); it now runs at the sweep's temperature against the cached arm there."""
    target, draft = tiny_pair
    trial = GenerationTrial(gammas=(2,), temperatures=(0.7,), drafters=("prompt-lookup",), n_prompts=2,
                            prompt_tokens=8, max_new_tokens=6, kv_cache_off=True)
    rows = measure_generation(TinyTask(), trial, target=target, draft=draft, progress=False)
    off = [r for r in rows if r["scenario"] == "generation-plain" and r["kv_cache"] is False]
    assert len(off) == 1 and off[0]["temperature"] == 0.7 and off[0]["failed"] is False
    on = next(r for r in rows if r["scenario"] == "generation-plain" and r["kv_cache"] is True)
    assert off[0]["speedup"] == pytest.approx(off[0]["tokens_per_s"] / on["tokens_per_s"], rel=0.01)
    assert off[0]["new_tokens"] == on["new_tokens"] == 2 * 6


def test_every_arm_does_the_same_decode_work(tiny_pair):
    """Item 5 (#12): every arm makes the same tokens count (no EOS stop, no padding) and says what its work is."""
    target, draft = tiny_pair
    trial = GenerationTrial(gammas=(1, 3), n_prompts=2, prompt_tokens=8, max_new_tokens=5, kv_cache_off=True)
    rows = measure_generation(TinyTask(), trial, target=target, draft=draft, progress=False)
    assert {r["new_tokens"] for r in rows} == {2 * 5}
    for row in rows:
        assert row["eos_stop"] is False and "no EOS stop" in row["decode_notes"] and not row["failed"]
        assert row["prefill_ms"] >= 0 and row["e2e_tokens_per_s"] <= row["tokens_per_s"]
        assert row["device"] == "cpu"
    off = next(r for r in rows if r.get("kv_cache") is False)
    assert "no KV cache" in off["decode_notes"] and off["identical"] is True
    lean = [r for r in rows if r.get("drafter") == "draft-model"]
    assert lean and all(r["draft_forward"] == "lean-gpt2" and "lean-gpt2 draft forward" in r["decode_notes"]
                        for r in lean)


@pytest.mark.gpu
def test_generation_rows_on_cuda(tiny_pair):
    """Item 6 (#12): the sweep runs on the target's device (sequences, drafts, sampling generators all there)."""
    import copy

    target, draft = (copy.deepcopy(m).cuda() for m in tiny_pair)
    trial = GenerationTrial(gammas=(2,), temperatures=(0.0, 0.8), n_prompts=2, prompt_tokens=8, max_new_tokens=6)
    rows = measure_generation(TinyTask(), trial, target=target, draft=draft, progress=False)
    assert all(r["device"] == "cuda" and not r["failed"] and r["tokens_per_s"] > 0 for r in rows)
    assert all(r["identical"] for r in rows if r.get("scenario") == "generation-speculative" and r["temperature"] == 0)


def test_request_metrics_and_roofline_on_rows(tiny_pair, monkeypatch):
    """#14: TTFT = prefill + first token, TPOT per token after it, ITL per accepted token on speculative rows, and the
    roofline (weights + KV bytes per token against this run's copy bandwidth) on every cached decode row."""
    import workbench.decoding.lm as lm
    import workbench.measure.roofline as roofline

    target, draft = tiny_pair
    now = [0.0]
    monkeypatch.setattr(lm, "time", FakeTime(lambda: now[0]), raising=False)
    monkeypatch.setattr(roofline, "run_read_bandwidth", lambda device, threads: 1.0)   # 1 GB/s: MBU by hand

    def hook(module, args, kwargs):   # every target forward over T tokens takes 1 + 0.1 T seconds
        now[0] += 1.0 + 0.1 * kwargs["input_ids"].shape[-1]
    handle = target.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        trial = GenerationTrial(gammas=(3,), drafters=("prompt-lookup",), n_prompts=2, prompt_tokens=8,
                                max_new_tokens=6, kv_cache_off=True)
        rows = measure_generation(TinyTask(), trial, target=target, draft=draft, progress=False)
    finally:
        handle.remove()
    plain = next(r for r in rows if r["scenario"] == "generation-plain" and r["kv_cache"])
    assert plain["ttft_ms_p50"] == pytest.approx((1.7 + 1.1) * 1e3)    # prefill of 7 tokens + the first step
    assert plain["tpot_ms_mean"] == pytest.approx(1.1e3) and plain["itl_ms_p50"] == pytest.approx(1.1e3)
    assert plain["e2e_ms_mean"] == pytest.approx((1.7 + 6 * 1.1) * 1e3) and plain["itl_samples"] == 2 * 5
    assert plain["output_tokens_per_s_aggregate"] == pytest.approx(12 / (2 * 8.3), abs=1e-3)
    from workbench.runtime.kv_budget import decode_weight_bytes as weight_bytes, kv_bytes_per_position
    per_token = weight_bytes(target) + kv_bytes_per_position(target) * (8 + 3)
    assert plain["bytes_per_token"] == pytest.approx(per_token, abs=1)
    assert plain["bandwidth_utilisation"] == pytest.approx(per_token / 1.1 / 1e9, rel=1e-2)
    spec = next(r for r in rows if r["scenario"] == "generation-speculative")
    # every accepted token is one ITL sample after the first round; TPOT spreads e2e - TTFT over them
    assert spec["itl_samples"] + 2 <= spec["output_tokens"] == 12
    assert spec["itl_ms_mean"] * spec["itl_samples"] <= (spec["e2e_ms_mean"] - spec["ttft_ms_mean"]) * 2 + 1e-6
    off = next(r for r in rows if r.get("kv_cache") is False)
    assert "bandwidth_utilisation" not in off and "no KV cache" in off["roofline_note"] and off["tpot_ms_mean"] > 0
