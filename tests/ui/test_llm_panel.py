"""LLM serving rows (workbench.ui.llm_panel): request metrics, phase token rates, costs, unavailable arms, on a tiny
random GPT-2 and on hand-made emission times."""
import pytest
import torch

from workbench.decoding.fast_loop import DecodeResult
from workbench.ui.llm_panel import Arm, LlmRun, arm_row, cache_generate, run_arms

VOCAB = 96


def _tiny_gpt2(n_embd=64):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=n_embd, n_layer=2, n_head=2)
    return GPT2LMHeadModel(cfg).eval()


class TinyLMTask:
    """What run_arms asks of a causal-LM task: a baseline, prompts and token blocks (perplexity)."""

    name = "tiny-lm"

    def __init__(self, n_embd=64):
        self.model = _tiny_gpt2(n_embd)
        self.blocks = torch.randint(0, VOCAB, (6, 24), generator=torch.Generator().manual_seed(1))

    def baseline(self):
        from workbench.core import Variant
        from workbench.runtime.torch_runner import TorchRunner

        return Variant(name="torch-fp32", task=self.name, backend="torch", device="cpu", precision="fp32",
                       runner=TorchRunner(self.model, "cpu", ("input_ids",)), model=self.model)

    def prompts(self, n, prompt_tokens):
        return [self.blocks[i:i + 1, :prompt_tokens] for i in range(n)]

    def token_blocks(self, split="test"):
        return self.blocks


RUN = LlmRun(prompt_len=8, new_tokens=4, n_prompts=2, ppl_blocks=4, threads=1, compile=False, prefix_len=16,
             prefix_requests=2)


def test_arm_row_turns_emission_times_into_ttft_tpot_phase_rates_agreement_and_roofline():
    from workbench.runtime.kv_budget import decode_weight_bytes

    model = _tiny_gpt2()
    tokens = torch.arange(12).view(1, 12)
    other = tokens.clone()
    other[0, -1] = 99                                   # one of 4 new tokens differs from the reference
    results = [DecodeResult(tokens, 0.0, [0.1, 0.15, 0.2, 0.25], [1] * 4),
               DecodeResult(other, 1.0, [1.1, 1.15, 1.2, 1.25], [1] * 4)]
    arm = Arm("fp32", None, model, kv_bytes_per_token=1000.0)
    row = arm_row(arm, results, prompt_len=8, reference=[results[0], results[0]], peak_gb_s=10.0)
    assert row["ttft_ms"] == pytest.approx(100.0) and row["tpot_ms"] == pytest.approx(50.0)
    assert row["prompt_tokens_per_s"] == pytest.approx(80.0)          # 8 prompt tokens / 0.1 s of prefill
    assert row["output_tokens_per_s"] == pytest.approx(20.0)          # 1 / 50 ms per decode step
    assert row["throughput_per_s"] == pytest.approx(4.0)              # one request per 250 ms
    assert row["token_agreement_vs_fp32"] == pytest.approx(0.875)     # 7 of 8 new tokens agree
    step_bytes = decode_weight_bytes(model) + 1000.0 * (8 + 4 / 2)
    assert row["bytes_per_token"] == round(step_bytes)
    assert row["bandwidth_utilisation"] == pytest.approx(step_bytes * 20 / 10e9, rel=1e-3)


def test_cache_generate_matches_the_int8_kv_greedy_loop_with_one_emission_per_token():
    from workbench.steps.kv_cache import greedy_generate

    model, ids = _tiny_gpt2(), torch.randint(0, VOCAB, (1, 6), generator=torch.Generator().manual_seed(2))
    res = cache_generate(model, ids, 5, bits=8)
    assert torch.equal(res.tokens, greedy_generate(model, ids, 5, bits=8))
    assert len(res.emit_times) == 5 and res.emit_counts == [1] * 5
    assert res.start <= res.emit_times[0] and res.emit_times == sorted(res.emit_times)


def test_run_arms_costs_each_row_from_its_measured_rates_and_reports_unavailable_arms(monkeypatch):
    import workbench.steps.weight_only as wo
    from workbench.runtime import cpu as isa

    def no_int4(bits, group_size, device):
        if bits == 4:
            raise wo.WeightOnlyUnavailable("int4 weight-only not available here: test")

    monkeypatch.setattr(isa, "native_bf16", lambda _isa: (False, "no AMX/AVX512-BF16 (test)"))
    monkeypatch.setattr(wo, "check_kernel", no_int4)
    rows = run_arms(TinyLMTask(), ["kv-int8", "bf16", "int4-wo", "fast-loop", "prefix-cache"], RUN,
                    instance="c7a.large", api="openai/gpt-4o-mini", progress=False)
    by = {r["arm"]: r for r in rows}
    assert [r["arm"] for r in rows] == ["fp32", "bf16", "fast-loop", "int4-wo", "kv-int8", "prefix-cache"]
    assert not by["bf16"]["available"] and "no AMX/AVX512-BF16 (test)" in by["bf16"]["reason"]
    assert not by["int4-wo"]["available"] and "int4 weight-only not available here" in by["int4-wo"]["reason"]
    usd = 0.10264                                                      # c7a.large in the shipped price table
    for name in ("fp32", "fast-loop", "kv-int8"):
        r = by[name]
        assert r["usd_per_hour"] == usd and r["n_requests"] == 2 and r["output_tokens"] == 8
        assert r["usd_per_1m_output_tokens"] == pytest.approx(usd / (r["output_tokens_per_s"] * 3600) * 1e6)
        assert r["usd_per_1m_prompt_tokens"] == pytest.approx(usd / (r["prompt_tokens_per_s"] * 3600) * 1e6)
    assert by["fast-loop"]["token_agreement_vs_fp32"] == 1.0           # same weights, exact greedy loop
    assert by["fp32"]["ppl_note"].startswith("same fp32 weights") and "ppl_increase_pct" not in by["fp32"]
    kv = by["kv-int8"]
    assert kv["n_blocks"] == 4 and kv["ppl_increase_ci_pct"][0] <= kv["ppl_increase_pct"] <= kv["ppl_increase_ci_pct"][1]
    prefix = by["prefix-cache"]
    assert prefix["prefix_len"] == 16 and prefix["ttft_ms"] == prefix["ttft_ms_reused"]
    assert prefix["usd_per_1m_prompt_tokens_prefix_cached"] == pytest.approx(
        usd / (prefix["prompt_tokens_per_s_reused"] * 3600) * 1e6)
    assert prefix["api_usd_per_1m_prompt_uncached"] == 0.15                  # gpt-4o-mini's input price


def test_fast_loop_int4_arm_decodes_the_int4_weights_and_measures_their_perplexity():
    rows = run_arms(TinyLMTask(n_embd=128), ["int4-wo", "fast-loop-int4-wo"], RUN, progress=False)   # 128: one group
    by = {r["arm"]: r for r in rows}
    loop, hf = by["fast-loop-int4-wo"], by["int4-wo"]
    assert loop["available"] and "fast loop" in loop["notes"] and "int4" in loop["notes"]
    assert loop["bytes_per_token"] == hf["bytes_per_token"] < by["fp32"]["bytes_per_token"] / 3
    assert loop["ppl_increase_pct"] == hf["ppl_increase_pct"] != 0   # measured on the int4 weights, not fp32's


def test_run_arms_rejects_unknown_or_no_arms():
    with pytest.raises(ValueError, match="unknown or none ticked"):
        run_arms(TinyLMTask(), ["fp64"], RUN)
    with pytest.raises(ValueError, match="unknown or none ticked"):
        run_arms(TinyLMTask(), [], RUN)
    with pytest.raises(ValueError, match="TPOT"):
        LlmRun(new_tokens=1)
    with pytest.raises(ValueError, match="context of 64 tokens"):            # the tiny GPT-2 holds 64 positions
        run_arms(TinyLMTask(), ["fp32"], LlmRun(prompt_len=60, new_tokens=8))


def test_prefix_trial_is_shortened_to_the_models_context_and_says_so():
    run = LlmRun(prompt_len=8, new_tokens=4, prefix_len=100, prefix_requests=2, threads=1)
    (row,) = run_arms(TinyLMTask(), ["prefix-cache"], run, progress=False)
    assert row["prefix_len"] + row["suffix_len"] == 64 and "shortened from 100" in row["notes"]
    assert row["usd_per_1m_prompt_tokens"] == row["usd_per_1m_prompt_tokens_uncached"] > 0
