"""The per-kind adapter of the optimize search, causal-LM side, on a tiny random Llama (no demo weights, seconds)."""
from types import SimpleNamespace

import pytest
import torch

from workbench.optimize.kinds import CausalLMKind, ClassifierKind, kind_for


class _Blocks:
    """A task stand-in: token blocks per split (random ids of the tiny model's vocabulary)."""

    def __init__(self, vocab):
        gen = torch.Generator().manual_seed(3)
        self.blocks = {s: torch.randint(0, vocab, (6, 24), generator=gen) for s in ("validation", "test")}

    def token_blocks(self, split="test"):
        return self.blocks[split]


@pytest.fixture(scope="module")
def lm():
    from workbench.arms.llm import decode_context, llm_arms, random_llama

    torch.set_num_threads(1)
    model = random_llama(small=True)
    task = _Blocks(model.config.vocab_size)
    ctx = decode_context(model, prompt=8, new=6, batches=(1, 2), compile=False, quality="perplexity", task=task,
                         threads=1, ppl_blocks=6)
    ctx.options["quality_ids"] = task.token_blocks("validation")
    ctx.options["report_ids"] = task.token_blocks("test")
    arms = {a.name: a for a in llm_arms(["hf-generate-fp32", "hf-int4-wo"], compile=False)}
    built = {n: a.build(ctx) for n, a in arms.items() if a.skip_reason is None}
    yield SimpleNamespace(ctx=ctx, built=built, task=task)
    for b in built.values():
        b.release()


def test_kind_for_names_the_kinds_and_refuses_others():
    assert isinstance(kind_for("causal-lm", True), CausalLMKind)
    assert isinstance(kind_for("text-classification", True), ClassifierKind)
    with pytest.raises(ValueError, match="text2text"):
        kind_for("text2text", True)


def test_llm_call_times_another_batch_through_the_same_arm(lm):
    call = lm.built["hf-generate-fp32"].call
    res = call.at_batch(2)()
    assert res.tokens.shape == (2, 8 + 6)          # 2 sequences, prompt + new tokens
    assert call().tokens.shape == (1, 8 + 6)       # the default call stays at the context's first batch


def test_the_screen_times_the_lm_at_its_batch_and_the_classifier_as_built(lm):
    built = lm.built["hf-generate-fp32"]
    assert CausalLMKind.timed(built, 2).call().tokens.shape == (2, 8 + 6)
    assert CausalLMKind.timed(built, 1) is built and ClassifierKind.timed(built, 2) is built
    from workbench.optimize.search import Settings

    assert CausalLMKind(small=True).settings(Settings.for_mode(True)).batch_size == 4     # the top of (1, 2, 4)


def test_an_arm_of_one_sequence_serves_the_screens_batch_as_requests_one_after_another():
    from workbench.arms.base import BuiltArm

    served = []

    def one_sequence(batch):
        def call():
            if batch > 1:
                raise ValueError("decodes one sequence per context")
            served.append(batch)
        return call

    call = one_sequence(1)
    call.at_batch = one_sequence
    built = BuiltArm(call=call, meta={"max_batch": 1})     # as llama.cpp's arm is built
    CausalLMKind.timed(built, 4).call()
    assert served == [1, 1, 1, 1]                          # the screen's 4 sequences, as 4 requests of 1
    assert CausalLMKind.timed(built, 1) is built


def test_point_reads_itl_per_output_token_and_output_tokens_per_s(lm):
    kind = CausalLMKind(small=True)
    kind.shape = {**kind.shape, "prompt": 8, "new": 6}
    s = SimpleNamespace(settings=SimpleNamespace(point_seconds=0.05), ctx=lm.ctx, device="cpu",
                        build=lambda n: lm.built[n])
    row = kind.point(s, "hf-generate-fp32", 2)
    assert row["batch_size"] == 2 and row["scenario"] == "generation-batching" and row["slo_latency"] == "itl"
    assert row["n_calls"] == row["n_requests"] * 5          # 6 tokens: 5 intervals per request, the ITL samples
    assert 0 < row["latency_p50_ms"] <= row["e2e_ms_mean"]
    # output tokens/s of whole requests: B x new tokens over the mean request time
    assert row["throughput_per_s"] == pytest.approx(2 * 6 / (row["e2e_ms_mean"] / 1e3), rel=1e-3)


def test_quality_figures_are_the_perplexity_increase_in_percent(lm):
    kind = CausalLMKind(small=True)
    base = lm.built["hf-generate-fp32"].quality()
    assert base.metric == "perplexity"
    own = kind.quality_figures(None, base)
    assert "drop_pts" not in own and own["metric"] == "perplexity"
    if "hf-int4-wo" not in lm.built:
        pytest.skip("no int4 weight-only kernel here")
    q = lm.built["hf-int4-wo"].quality()
    fig = kind.quality_figures(base, q)
    expected = 100 * (q.value / base.value - 1)
    assert fig["drop_pts"] == fig["ppl_increase_pct"] == pytest.approx(expected, abs=0.01)
    assert fig["drop_ci_pts"][0] <= fig["drop_pts"] <= fig["drop_ci_pts"][1] and fig["drop_unit"] == "% ppl"


def test_report_quality_scores_the_test_blocks_and_restores_the_chosen_ones(lm):
    built = CausalLMKind.with_report_quality(lm.built["hf-generate-fp32"], lm.ctx)
    chosen = built.quality()
    reported = built.report_quality()
    assert lm.ctx.options["quality_ids"] is lm.task.token_blocks("validation")
    assert reported.value != pytest.approx(chosen.value)    # other blocks, other perplexity
    assert built.quality().value == pytest.approx(chosen.value)


def test_cost_is_per_1m_output_tokens_at_the_slo_point():
    from workbench.optimize.search import read_slo

    rows = [{"scenario": "generation-batching", "batch_size": b, "seq_len": 16, "output_len": 24, "n_calls": 400,
             "latency_p50_ms": lat / 2, "latency_p99_ms": lat, "throughput_per_s": tps, "stable": True}
            for b, lat, tps in ((1, 10.0, 100.0), (2, 30.0, 160.0), (4, 80.0, 200.0))]
    kind = CausalLMKind(small=True)
    reading = read_slo(rows, 50.0, "p99", ("c7i.large",), kind.cost)
    from workbench.measure.cost import get_price

    hourly = get_price("c7i.large").usd_per_hour
    assert reading["batch_size"] == 2 and reading["tail_ms"] == 30.0
    assert reading["usd_per_1m"]["c7i.large"] == pytest.approx(hourly / 3600 / 160.0 * 1e6, rel=1e-4)
    # the classifier's unit on the same rows is per 1M requests: the same formula, another meaning of throughput
    assert ClassifierKind().cost(hourly, 160.0) == pytest.approx(kind.cost(hourly, 160.0))


def test_engine_spec_ships_what_the_checkpoint_carries_else_the_nearest_with_a_note():
    from workbench.arms.llm import LLM_ARMS
    from workbench.optimize.engine_handoff import SPECS, engine_spec

    assert set(SPECS) == set(LLM_ARMS)
    assert engine_spec("fast-loop-int4-wo") == ("int4-wo", None)
    assert engine_spec("hf-generate-bf16") == ("baseline", None)
    spec, note = engine_spec("ort-int8-matmulnbits")
    assert spec == "int8-wo" and "ONNX" in note
    spec, note = engine_spec("hf-generate-fp32")
    assert spec == "baseline" and "bf16" in note


def test_lm_decision_table_names_the_units():
    from workbench.optimize.decision import decision_text

    d = {"task": "causal-lm", "model": "demo", "cpu": "x", "device": "cpu", "slo": {"ms": 50.0, "percentile": "p99"},
         "slo_latency": "per output token (ITL)", "max_drop": 1.0, "drop_unit": "% ppl",
         "cost_unit": "USD per 1M output tokens", "throughput_unit": "output tokens/s", "elapsed_s": 80.0,
         "budget_s": 600.0, "complete": True,
         "pick": {"arm": "hf-int8-wo", "batch_size": 4, "confirmed_speedup": 1.2, "tail_ms": 20.0,
                  "throughput_per_s": 150.0, "percentile_used": "p99", "usd_per_1m": {"c7i.large": 0.16},
                  "quality": {"metric": "perplexity", "split": "test", "value": 110.0, "drop": 0.1,
                              "ci": [-0.1, 0.3]}},
         "arms": [{"arm": "hf-int4-wo", "outcome": "lost", "stage": "quality", "why": "quality drop CI [0.50, 2.00] "
                   "% ppl above the 1 limit", "speedup": 1.1, "drop": 1.2, "usd_per_1m": None}],
         "build_vs_buy": [], "skipped_for_budget": []}
    text = decision_text(d)
    assert "max drop 1 % ppl" in text.splitlines()[0] and "per output token (ITL)" in text.splitlines()[0]
    assert "150.0 output tokens/s, $0.16 per 1M output tokens on c7i.large" in text
    assert "drop 0.10 [-0.10, 0.30] on test (% ppl)" in text


def test_the_classifier_on_cuda_takes_the_gpu_arms_a_longer_grid_and_no_calibration(tmp_path):
    from workbench.optimize.kinds import GPU_GRID_TOP
    from workbench.optimize.search import Settings

    gpu, cpu = kind_for("text-classification", False, "cuda"), kind_for("text-classification", False)
    st = gpu.settings(Settings.for_mode(False))
    assert st.grid == (1, 2, 4, 8, 16, 32, 64, 128, 256) and st.batch_size == GPU_GRID_TOP   # screened at the top
    assert cpu.settings(Settings.for_mode(False)).grid[-1] == 32
    assert gpu.calibration(None, st, tmp_path) is None       # no GPU arm calibrates: no calibration set is made
    names = [a.name for a in gpu.catalogue({}, None)]
    assert names[0] == "torch-fp32" and "torch-compile-bf16" in names and "ov-int8-static" not in names
    lm = kind_for("causal-lm", True, "cuda")
    assert lm.device == "cuda" and "run on CPU here" in {a.name: a for a in lm.catalogue({}, None)}[
        "ort-int8-matmulnbits"].skip_reason
    with pytest.raises(ValueError, match=r"device 'tpu': use one of"):
        kind_for("text-classification", True, "tpu")
