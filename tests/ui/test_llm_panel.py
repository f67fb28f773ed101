"""LLM serving rows (workbench.ui.llm_panel over workbench.arms.llm): request metrics, phase token rates, costs,
unavailable arms, perplexity on each arm's own weights, on a tiny random GPT-2."""
import pytest
import torch

from workbench.ui.llm_panel import LlmRun, run_arms

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


def test_run_arms_costs_each_row_from_its_measured_rates_and_reports_unavailable_arms(monkeypatch):
    import workbench.steps.weight_only as wo
    from workbench.runtime import cpu as isa

    def no_int4(bits, group_size, device):
        if bits == 4:
            raise wo.WeightOnlyUnavailable("int4 weight-only not available here: test")

    monkeypatch.setattr(isa, "native_bf16", lambda _isa: (False, "no AMX/AVX512-BF16 (test)"))
    monkeypatch.setattr(wo, "check_kernel", no_int4)
    rows = run_arms(TinyLMTask(), ["hf-kv-int8", "hf-generate-bf16", "hf-int4-wo", "fast-loop-fp32", "prefix-cache"],
                    RUN, instance="c7a.large", api="openai/gpt-4o-mini", progress=False)
    by = {r["arm"]: r for r in rows}
    assert [r["arm"] for r in rows] == ["hf-generate-fp32", "fast-loop-fp32", "hf-generate-bf16", "hf-int4-wo",
                                        "hf-kv-int8", "prefix-cache"]
    bf16, int4 = by["hf-generate-bf16"], by["hf-int4-wo"]
    assert not bf16["available"] and "no AMX/AVX512-BF16 (test)" in bf16["reason"]
    assert not int4["available"] and "int4 weight-only not available here" in int4["reason"]
    usd = 0.10264                                                      # c7a.large in the shipped price table
    for name in ("hf-generate-fp32", "fast-loop-fp32", "hf-kv-int8"):
        r = by[name]
        # 2 prompts, each one request (one timing sample) of 4 tokens; TTFT from the same call as the tokens
        assert r["usd_per_hour"] == usd and r["n_requests"] == 2 and r["output_tokens"] == 8, r
        assert r["ttft_ms_p50"] < r["e2e_ms_p50"] and r["itl_samples"] == 2 * 3
        assert r["output_tokens_per_s"] == pytest.approx(1e3 / r["tpot_ms_mean"], rel=1e-3)
        assert r["prompt_tokens_per_s"] == pytest.approx(8 * 1e3 / r["ttft_ms_mean"], rel=1e-3)
        assert r["usd_per_1m_output_tokens"] == pytest.approx(usd / (r["output_tokens_per_s"] * 3600) * 1e6)
        assert r["usd_per_1m_prompt_tokens"] == pytest.approx(usd / (r["prompt_tokens_per_s"] * 3600) * 1e6)
    assert by["fast-loop-fp32"]["token_agreement_vs_fp32"] == 1.0      # same weights, exact greedy loop
    assert by["hf-generate-fp32"]["ppl_note"].startswith("the baseline")
    assert "ppl_increase_pct" not in by["hf-generate-fp32"]
    assert by["fast-loop-fp32"]["ppl_increase_pct"] == pytest.approx(0.0, abs=1e-3)   # scored through its own loop
    kv = by["hf-kv-int8"]
    low, high = kv["ppl_increase_ci_pct"]
    assert kv["n_blocks"] == 4 and low <= kv["ppl_increase_pct"] <= high
    prefix = by["prefix-cache"]
    assert prefix["prefix_len"] == 16 and prefix["ttft_ms"] == prefix["ttft_ms_reused"]
    assert prefix["usd_per_1m_prompt_tokens_prefix_cached"] == pytest.approx(
        usd / (prefix["prompt_tokens_per_s_reused"] * 3600) * 1e6)
    assert prefix["api_usd_per_1m_prompt_uncached"] == 0.15                  # gpt-4o-mini's input price


def test_fast_loop_int4_arm_decodes_the_int4_weights_and_measures_their_perplexity():
    rows = run_arms(TinyLMTask(n_embd=128), ["hf-int4-wo", "fast-loop-int4-wo"], RUN, progress=False)  # 128: a group
    by = {r["arm"]: r for r in rows}
    loop, hf, fp32 = by["fast-loop-int4-wo"], by["hf-int4-wo"], by["hf-generate-fp32"]
    assert loop["available"] and "fast loop" in loop["notes"] and "int4" in loop["notes"]
    assert loop["weight_bytes_per_step"] == hf["weight_bytes_per_step"] < fp32["weight_bytes_per_step"] / 3
    # the static cache's attention reads all max_cache_len positions; HF's dynamic cache the mean context
    assert loop["static_cache_len"] == 25 and hf["static_cache_len"] is None
    assert loop["bytes_per_token"] == loop["weight_bytes_per_step"] + loop["kv_bytes_per_position"] * 25
    assert hf["bytes_per_token"] == round(hf["weight_bytes_per_step"] + hf["kv_bytes_per_position"] * (8 + 4 / 2))
    # measured on the int4 weights (not fp32's), each through its own path: the loop's step, HF's forward
    assert loop["ppl_increase_pct"] == pytest.approx(hf["ppl_increase_pct"], abs=0.05) and hf["ppl_increase_pct"] != 0


def test_run_arms_rejects_unknown_or_no_arms():
    with pytest.raises(ValueError, match="unknown or none ticked"):
        run_arms(TinyLMTask(), ["fp64"], RUN)
    with pytest.raises(ValueError, match="unknown or none ticked"):
        run_arms(TinyLMTask(), [], RUN)
    with pytest.raises(ValueError, match="TPOT"):
        LlmRun(new_tokens=1)
    with pytest.raises(ValueError, match="context of 64 tokens"):            # the tiny GPT-2 holds 64 positions
        run_arms(TinyLMTask(), ["hf-generate-fp32"], LlmRun(prompt_len=60, new_tokens=8))


def test_prefix_trial_is_shortened_to_the_models_context_and_says_so():
    run = LlmRun(prompt_len=8, new_tokens=4, prefix_len=100, prefix_requests=2, threads=1)
    (row,) = run_arms(TinyLMTask(), ["prefix-cache"], run, progress=False)
    assert row["prefix_len"] + row["suffix_len"] == 64 and "shortened from 100" in row["notes"]
    assert row["usd_per_1m_prompt_tokens"] == row["usd_per_1m_prompt_tokens_uncached"] > 0
