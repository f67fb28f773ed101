"""The text2text task kind: T5 / BART directories with source-target JSONL, ROUGE-L/chrF quality, generation timing."""
import dataclasses
import json

import pytest
from tiny_task_models import TEXTS, bart, t5

from workbench.measure.generation import measure_text2text_generation
from workbench.tasks import get_task
from workbench.tasks.text_metrics import chrf, rouge_l


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("\n".join(json.dumps({"source": s, "target": " ".join(s.split()[:3])}) for s in TEXTS[:16]))
    return path


@pytest.fixture(scope="module", params=["t5", "bart"])
def task(request, tmp_path_factory, data):
    build = {"t5": t5, "bart": bart}[request.param]
    task = get_task("text2text", build(tmp_path_factory.mktemp(request.param) / "m"), data=data)
    task.max_new_tokens = 8  # random weights never stop early: keep each generation short on 2 shared cores
    return task


def test_task_answers_the_measurement_questions(task):
    assert task.generates_text and task.kind == "text2text"
    inputs = task.example_inputs(batch_size=3, seq_len=12)
    assert inputs["input_ids"].shape == (3, 12) and inputs["decoder_input_ids"].shape == (3, 1)
    assert int(inputs["decoder_input_ids"][0, 0]) == task.decoder_start_token_id
    assert task.tokens_in(inputs) == int(inputs["attention_mask"].sum()) <= 36
    logits = task.baseline()(inputs)               # the timed call: encoder + first decoder step
    assert logits.shape == (3, 1, len(task.tokenizer))
    batch = next(task.calibration_batches(n_examples=4, batch_size=2))
    assert set(batch) == {"input_ids", "attention_mask", "decoder_input_ids"} and len(batch["input_ids"]) == 2


def test_quality_is_the_mean_metric_of_the_generations(task):
    base = task.baseline()
    result = task.evaluate(base, batch_size=3)
    pairs = task.pairs["test"]
    outputs = task.generate(base, [s for s, _ in pairs])
    assert any(o.strip() for o in outputs)            # the random model really generates text
    want = [rouge_l(o, t) for o, (_, t) in zip(outputs, pairs)]
    assert result.metric == "rouge_l" and result.n_examples == len(pairs) == 8
    assert result.value == pytest.approx(sum(want) / len(want)) and result.per_example == pytest.approx(tuple(want))
    assert result.extra["chrf"] == pytest.approx(sum(chrf(o, t) for o, (_, t) in zip(outputs, pairs)) / 8, abs=1e-3)


def test_a_variant_that_writes_the_targets_scores_100(task):
    pairs = task.pairs["test"]

    class Oracle:  # a runner that "generates" the reference of each source it is given
        threads = 1

        def generate_seq2seq(self, batch, max_new_tokens, min_new_tokens=0):
            by_ids = {tuple(task.encode([s])["input_ids"][0].tolist()): t for s, t in pairs}
            rows = [by_ids[tuple(r[m.bool()].tolist())] for r, m in zip(batch["input_ids"], batch["attention_mask"])]
            return task.tokenizer(rows, padding=True, return_tensors="pt")["input_ids"]

    oracle = dataclasses.replace(task.baseline(), runner=Oracle(), model=None)
    result = task.evaluate(oracle)
    assert result.value == 100.0 and result.ci_low == 100.0 and result.extra["chrf"] == 100.0


def test_generation_is_timed_per_output_token(task):
    row = measure_text2text_generation(task, task.baseline(), n_sources=2, new_tokens=6, repeats=2)
    assert row["n_sources"] == 2 and row["threads"] >= 1 and row["backend"] == "torch"
    assert 0 < row["ms_per_output_token"] < row["first_token_ms"] * 50
    assert row["output_tokens_per_s"] == pytest.approx(1e3 / row["ms_per_output_token"], rel=0.01)


def test_bad_input_is_named(tmp_path, data):
    with pytest.raises(ValueError, match="no built-in demo"):
        get_task("text2text")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"source": "a"}\n')
    with pytest.raises(ValueError, match="has no 'target' field"):
        get_task("text2text", t5(tmp_path / "m"), data=bad)
    from tiny_task_models import llama
    with pytest.raises(ValueError, match="not an encoder-decoder: use the causal-lm task"):
        get_task("text2text", llama(tmp_path / "l", head="lm"), data=data)


def test_measure_variant_gives_a_row_with_rouge_and_tokens(task):
    from workbench.measure import measure_variant

    row = measure_variant(task, task.baseline(), batch_size=2, seq_len=12, eval_limit=2, max_seconds=1.0)
    assert row["metric"] == "rouge_l" and row["quality_n"] == 2 and row["seq_len"] == 12
    assert row["tokens_per_s"] > 0 and row["latency_p50_ms"] > 0 and "chrf" in row


def test_a_tokenizer_without_a_pad_token_pads_with_the_configs_pad_id(tmp_path, data):
    """A T5 whose saved tokenizer names no pad token (config.json does): batches of unequal sources still encode,
    padded with the config's id (families.pad_id, the rule every task kind uses), and generate."""
    import json as _json

    from transformers import AutoTokenizer

    model_dir = t5(tmp_path / "m", tokenizer_pad=False)
    assert AutoTokenizer.from_pretrained(model_dir).pad_token is None  # the failure case is really built
    config_pad = _json.loads((model_dir / "config.json").read_text())["pad_token_id"]
    task = get_task("text2text", model_dir, data=data)
    task.max_new_tokens = 4
    assert task.tokenizer.pad_token_id == config_pad
    enc = task.encode([TEXTS[0], TEXTS[0] + " and then some more words here"])
    short = int(enc["attention_mask"][0].sum())
    assert short < enc["input_ids"].shape[1] and set(enc["input_ids"][0, short:].tolist()) == {config_pad}
    assert task.evaluate(task.baseline(), limit=3, batch_size=3).n_examples == 3
