"""The LLM decode catalogue (workbench.arms.llm): one set of names, skip reasons with the fact behind them, request
metrics and the roofline from the timed calls themselves (by hand), quality on the timed weights."""
import pytest
import torch

from workbench.arms.llm import BASELINE, BENCHMARK_ARMS, LLM_ARMS, decode_context, llm_arms, request_rows
from workbench.decoding.fast_loop import DecodeResult


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                        num_key_value_heads=2, intermediate_size=128, vocab_size=128,
                                        max_position_embeddings=64)).eval()


def test_catalogue_names_and_skip_reasons(monkeypatch):
    from workbench.runtime import cpu as isa

    arms = llm_arms(compile=False)
    assert [a.name for a in arms] == [n for n in LLM_ARMS if n in BENCHMARK_ARMS] and arms[0].name == BASELINE
    assert [a.name for a in arms if a.baseline] == [BASELINE]
    by = {a.name: a for a in arms}
    assert "--no-compile" in by["hf-static-compile-fp32"].skip_reason
    monkeypatch.setattr(isa, "native_bf16", lambda _isa: (False, "no AMX/AVX512-BF16 (test)"))
    bf16 = {a.name: a for a in llm_arms(["fast-loop-bf16"])}
    assert bf16["fast-loop-bf16"].skip_reason == "no AMX/AVX512-BF16 (test): slower than fp32, so not run"
    assert set(bf16) == {BASELINE, "fast-loop-bf16"}
    assert llm_arms(["fast-loop-bf16"], emulated_bf16=True)[1].skip_reason is None   # a plumbing check runs it
    # bf16-stored weights computed in fp32: not emulated bf16, so it runs there too
    assert llm_arms(["fast-loop-bf16w"])[1].skip_reason is None
    with pytest.raises(ValueError, match="unknown LLM arm"):
        llm_arms(["torch-int8-wo"])


def test_request_rows_by_hand():
    # two timed requests of 4 new tokens after an 8-token prompt (1 warm-up call first); the second one's last
    # token differs from HF's
    tokens = torch.arange(12).view(1, 12)
    other = tokens.clone()
    other[0, -1] = 99
    warm = DecodeResult(tokens, 0.0, [5.0, 5.1, 5.2, 5.3], [1] * 4)
    mine = [warm, DecodeResult(tokens, 0.0, [0.1, 0.15, 0.2, 0.25], [1] * 4),
            DecodeResult(other, 1.0, [1.1, 1.15, 1.2, 1.25], [1] * 4)]
    ref = [warm, mine[1], mine[1]]
    rows = [{"arm": "x", "n_calls": 2, "p50_ms": 250.0, "weight_bytes_per_step": 10**6, "kv_bytes_per_position": 1000,
             "static_cache_len": None},
            {"arm": "s", "n_calls": 2, "p50_ms": 250.0, "weight_bytes_per_step": 10**6, "kv_bytes_per_position": 1000,
             "static_cache_len": 64}]
    request_rows(rows, {BASELINE: ref, "x": mine, "s": mine}, warmup=1, prompt=8, new=4, peak_read_gb_s=10.0)
    row, static = rows
    assert row["n_requests"] == 2 and row["output_tokens"] == 8 and row["itl_samples"] == 6
    assert row["ttft_ms_p50"] == pytest.approx(100.0) and row["tpot_ms_p50"] == pytest.approx(50.0)
    assert row["prompt_tokens_per_s"] == pytest.approx(80.0)          # 8 prompt tokens / 0.1 s of prefill
    assert row["output_tokens_per_s"] == pytest.approx(20.0)          # 1 / 50 ms per decode step
    assert row["throughput_per_s"] == pytest.approx(4.0)              # one request per 250 ms
    assert row["tokens_per_s"] == pytest.approx(16.0)                 # 4 tokens per 250 ms request
    assert row["token_agreement_vs_hf"] == pytest.approx(0.875)       # 7 of 8 new tokens agree
    dynamic_bytes = 10**6 + 1000 * (8 + 4 / 2)                        # dynamic cache: the mean context
    assert row["bytes_per_token"] == round(dynamic_bytes)
    assert row["bandwidth_utilisation"] == pytest.approx(dynamic_bytes * 20 / 10e9, rel=1e-3)
    assert static["bytes_per_token"] == 10**6 + 1000 * 64             # static cache: all max_cache_len positions


def test_quality_is_measured_on_the_timed_weights_through_the_timed_path():
    model = tiny_llama()
    ctx = decode_context(model, prompt=6, new=4, compile=False, quality_seqs=2)
    by = {a.name: a for a in llm_arms(["fast-loop-fp32", "hf-int8-wo"], compile=False)}
    base = by[BASELINE].build(ctx).quality()
    loop = by["fast-loop-fp32"].build(ctx)
    q = loop.quality()
    assert base.metric == q.metric == "top1_agreement_pct" and base.value == 100.0
    assert q.value == 100.0 and q.extra["kl_vs_fp32"] < 1e-6 and "fast loop" in q.extra["scored_by"]
    assert q.n_examples == 2 * 8                                     # 2 sequences of min(64, cache 10 - 1) tokens
    int8 = by["hf-int8-wo"].build(ctx).quality()
    assert int8.extra["kl_vs_fp32"] > 0                              # the int8 weights, not fp32's
    res = loop.call()                                                # one whole request
    assert res.tokens.shape == (1, 10) and by["fast-loop-fp32"].records   # the runner keeps each call's result


# the isolated case spawns two interpreters (torch + transformers each): slow on a loaded 2-core machine
@pytest.mark.parametrize("isolate", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_request_metrics_come_from_the_timed_calls_in_process_and_isolated(isolate):
    """One process per arm (--isolate) sends each request's DecodeResult back with its time: the rows have TTFT /
    TPOT / ITL from the very calls the child timed, as they do when the arms share a process."""
    from workbench.arms.llm import random_llama, recipe
    from workbench.arms.runner import build_arms, time_arms

    names = ["fast-loop-fp32"]
    kwargs = dict(small=True, prompt=6, new=4, names=names, compile=False, threads=1, out=None)
    arms, ctx = recipe(**kwargs)
    prepared = build_arms(arms, ctx, isolate=isolate, recipe=("workbench.arms.llm", "recipe", kwargs))
    try:
        run = time_arms(prepared.built, rounds=3, calls_per_turn=1, warmup=1, threads=1)
    finally:
        prepared.close()
    results = ctx.cache["results"]
    assert {n: len(r) for n, r in results.items()} == {BASELINE: 4, "fast-loop-fp32": 4}   # 1 warm-up + 3 timed
    rows = [{"arm": n, "n_calls": t.n_calls, "p50_ms": t.p50_ms, "weight_bytes_per_step": None,
             "kv_bytes_per_position": None} for n, t in run.timing.items()]
    request_rows(rows, results, run.warmup, prompt=6, new=4, peak_read_gb_s=None)
    for row in rows:
        assert row["n_requests"] == 3 and row["output_tokens"] == 3 * 4 and row["itl_samples"] == 3 * 3
        assert 0 < row["ttft_ms_p50"] < row["e2e_ms_p50"] and row["tpot_ms_p50"] > 0
        # each call's own clock: its e2e is within the time the runner counted for it (the child's, when isolated)
        assert row["e2e_ms_p50"] <= row["p50_ms"] * 1.05
        assert row["token_agreement_vs_hf"] == 1.0           # the fast loop's greedy tokens are HF's
    assert random_llama(True).config.vocab_size == 1024 and random_llama(True, vocab=96).config.vocab_size == 96


def test_hf_static_compile_quality_is_scored_through_hf_compiled_forward(cheap_hf_compile, count_compiled_calls):
    from workbench.arms.rows import MEASURED, arm_row

    model = tiny_llama()
    ctx = decode_context(model, prompt=6, new=4, quality_seqs=2)
    by = {a.name: a for a in llm_arms(["hf-static-compile-fp32"])}
    built = by["hf-static-compile-fp32"].build(ctx)          # compiles at the timed length (cache 6 + 4)
    calls = count_compiled_calls(model)
    base = by[BASELINE].build(ctx).quality()
    q = built.quality()
    assert calls[0] == 2 * (9 - 2)                          # 2 sequences of 9 tokens: all but the eager prefill step
    assert q.value == 100.0 and q.extra["kl_vs_fp32"] < 1e-6 and q.n_examples == 2 * 8
    assert "compiled decode forward" in q.extra["scored_by"] and "eager decode" not in q.extra["scored_by"]
    row = arm_row(by["hf-static-compile-fp32"], MEASURED, quality=q, base_quality=base)
    assert row["quality_scored_by"] == q.extra["scored_by"] and row["quality_kl_vs_fp32"] == q.extra["kl_vs_fp32"]
    assert "eager forward" in arm_row(by[BASELINE], MEASURED, quality=base)["quality_scored_by"]


def test_a_compiled_arm_compiles_the_named_batch_sizes_at_build_and_the_others_on_first_call(monkeypatch):
    from workbench.decoding.fast_loop import FastDecoder, PrivateStep

    compiled = []

    def eager_stand_in(self, batch):   # the compile call, recorded; the step runs eagerly (no minutes of inductor)
        compiled.append(batch)
        return PrivateStep(lambda token, position, cache: FastDecoder._decode_step(self, token, position, cache),
                           frozen=False, gemv=False)
    monkeypatch.setattr(FastDecoder, "_compile_step", eager_stand_in)
    model = tiny_llama()
    with pytest.raises(ValueError, match="compile_batches"):
        decode_context(model, prompt=6, new=4, batches=(1, 2), compile_batches=(8,))
    ctx = decode_context(model, prompt=6, new=4, batches=(1, 2, 4), compile_batches=(2,), quality_seqs=3)
    arm = next(a for a in llm_arms(["fast-loop-fp32"]) if a.name == "fast-loop-fp32")
    built = arm.build(ctx)
    assert compiled == [2]                                  # only the named batch size compiled at build
    q = built.quality()                 # 3 sequences scored 2 at a time through the batch-2 graph (the last one padded)
    assert compiled == [2] and q.n_examples == 3 * 8 and q.value == 100.0 and q.extra["kl_vs_fp32"] < 1e-6
    built.call.at_batch(4)()                                # another batch size: its graph on its first call
    assert compiled == [2, 4]
    assert decode_context(model, prompt=6, new=4, batches=(1, 2)).options["compile_batches"] == (1, 2)   # default
