"""Batching sweep: real demo models for the measured rows; a stand-in task for failure handling."""
import json
import re
import time

import pytest
import torch

from workbench.core import Variant
from workbench.measure.batching import SweepConfig, sweep_batching, sweep_rows
from workbench.measure.timing import MIN_SAMPLES, PERCENTILES
from workbench.results import ResultsTable
from workbench.tasks import get_task


@pytest.fixture(scope="module")
def clf():
    return get_task("text-classification")


def test_classifier_sweep_rows_are_saved_as_measured(tmp_path, clf):
    task = clf
    table = ResultsTable(tmp_path / "results.jsonl")
    rows = sweep_batching(task, task.baseline(), SweepConfig(batch_sizes=(1, 4), seq_lens=(16, 32),
                                                             point_seconds=0.5), table, progress=False)
    saved = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [(r["seq_len"], r["batch_size"]) for r in saved] == [(16, 1), (16, 4), (32, 1), (32, 4)]
    for row in rows:
        assert row["scenario"] == "batching" and row["failed"] is False
        # A percentile is there only with enough timed calls behind it (timing.MIN_SAMPLES); else None and a note.
        measured = [row[f"latency_{p}_ms"] for p in PERCENTILES if row["n_calls"] >= MIN_SAMPLES[p]]
        assert measured and 0 < row["latency_p50_ms"] and measured == sorted(measured)
        for p in PERCENTILES:
            if row["n_calls"] < MIN_SAMPLES[p]:
                assert row[f"latency_{p}_ms"] is None and row[f"latency_{p}_note"] == f"n={row['n_calls']} < {MIN_SAMPLES[p]}"
        assert row["throughput_per_s"] > 0 and row["peak_rss_mb"] > 0
    assert [r["batch_size"] for r in sweep_rows(rows, seq_len=32)] == [1, 4]


def test_latency_cap_stops_growing_the_batch(clf):
    task = clf
    rows = sweep_batching(task, task.baseline(), SweepConfig(batch_sizes=(1, 2, 4), seq_lens=(16,), point_seconds=0.5,
                                                             latency_cap_ms=1e-3), progress=False)
    assert len(rows) == 1 and rows[0].get("capped") is True, rows[0].get("error")


def test_lm_sweep_times_prompt_and_output_separately():
    task = get_task("causal-lm")
    rows = sweep_batching(task, task.baseline(), SweepConfig(batch_sizes=(1, 2), seq_lens=(16,), output_lens=(4,),
                                                             point_seconds=0.5), progress=False)
    assert [r["batch_size"] for r in rows] == [1, 2]
    for row in rows:
        assert row["scenario"] == "generation-batching" and not row["failed"], row.get("error")
        assert row["prompt_len"] == 16 and row["output_len"] == 4
        assert row["prompt_tokens_per_s"] > 0 and row["output_tokens_per_s"] > 0 and row["decode_p50_ms"] > 0


class _TinyTask:
    """Inputs of the asked shape; enough of the Task API for the sweep."""

    name, kind = "tiny", "classification"
    generates_text = False

    def tokens_in(self, inputs):
        return None

    def example_inputs(self, batch_size, seq_len=None):
        return {"input_ids": torch.zeros(batch_size, seq_len or 8, dtype=torch.long)}


def _variant(fail_at: dict) -> Variant:
    def runner(inputs):
        batch = inputs["input_ids"].shape[0]
        if batch in fail_at:
            raise fail_at[batch]
        return inputs["input_ids"].float().sum(-1, keepdim=True)
    return Variant(name="fake", task="tiny", backend="torch", device="cpu", precision="fp32", runner=runner)


def test_failed_points_are_recorded_and_the_sweep_goes_on():
    variant = _variant({2: ValueError("bad shape"), 8: MemoryError("out of memory")})
    rows = sweep_batching(_TinyTask(), variant, SweepConfig(batch_sizes=(1, 2, 4, 8, 16, 32), point_seconds=0.2),
                          progress=False)
    by_batch = {r["batch_size"]: r for r in rows}
    assert by_batch[2]["failed"] and by_batch[2]["failure"] == "error" and "bad shape" in by_batch[2]["error"]
    assert not by_batch[4]["failed"]                      # an error does not stop the sweep
    assert by_batch[8]["failed"] and by_batch[8]["failure"] == "oom"
    assert 16 not in by_batch and 32 not in by_batch      # after OOM the batch stops growing


@pytest.mark.parametrize("kwargs, message", [
    (dict(batch_sizes=()), "batch_sizes"), (dict(batch_sizes=(0, 2)), "batch_sizes"),
    (dict(seq_lens=(-1,)), "seq_lens"), (dict(latency_cap_ms=0), "latency_cap_ms"),
])
def test_bad_sweep_configs_say_what_is_wrong(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SweepConfig(**kwargs)


def test_a_first_call_that_compiles_past_the_timeout_is_not_the_points_time(monkeypatch):
    # a compiled variant compiles for each new shape on its first call: that call alone reads 17 s here
    from workbench.measure import batching, timing

    first_of = set()

    def compiling_timed_call(fn, device="cpu"):
        ms, out = timing.timed_call(fn, device)
        batch = len(out)
        if batch not in first_of:
            first_of.add(batch)
            return 17_000.0, out
        return ms, out

    monkeypatch.setattr(batching, "timed_call", compiling_timed_call)
    rows = sweep_batching(_TinyTask(), _variant({}), SweepConfig(batch_sizes=(1, 2), timeout_s=10.0,
                                                                 point_seconds=0.2), progress=False)
    assert [r["batch_size"] for r in rows] == [1, 2] and not any(r.get("failed") for r in rows)


def test_a_point_past_its_timeout_fails_and_stops_the_line():
    rows = sweep_batching(_TinyTask(), _variant({}), SweepConfig(batch_sizes=(1, 2, 4), timeout_s=1e-9), progress=False)
    assert len(rows) == 1 and rows[0]["failed"] and rows[0]["failure"] == "timeout"


def test_each_point_times_the_calls_its_percentile_needs():
    # was: 5-call windows, 6 at most (<= 30 calls), so every "p99" was the slowest of 15-30 calls
    rows = sweep_batching(_TinyTask(), _variant({}), SweepConfig(batch_sizes=(1, 2), point_seconds=5.0),
                          progress=False)
    for row in rows:
        assert row["n_calls"] >= MIN_SAMPLES["p99"] and row["latency_p99_ms"] is not None, row
        assert "latency_p99_note" not in row and row["latency_p95_ms"] <= row["latency_p99_ms"]
    quick = sweep_batching(_TinyTask(), _variant({}), SweepConfig(batch_sizes=(1,), point_seconds=5.0,
                                                                  percentile="p90"), progress=False)
    assert MIN_SAMPLES["p90"] <= quick[0]["n_calls"] < MIN_SAMPLES["p99"]   # only what p90 needs
    serving = SweepConfig.serving()
    assert serving.percentile == "p99" and serving.min_calls == 200
    assert serving.point_seconds * len(serving.batch_sizes) <= 180   # bounded: 7 points x 20 s at most


def test_forward_only_times_one_forward_call_of_a_text_generating_task():
    class Generating(_TinyTask):
        generates_text = True

    rows = sweep_batching(Generating(), _variant({}), SweepConfig(batch_sizes=(1,), point_seconds=0.5,
                                                                  forward_only=True), progress=False)
    assert [(r["scenario"], r["output_len"], r["failed"]) for r in rows] == [("batching", None, False)]


def test_bad_planning_percentile_is_a_clear_error():
    with pytest.raises(ValueError, match=re.escape("percentile 'p97' unknown: use one of ('p50', 'p90', 'p95', 'p99')")):
        SweepConfig(percentile="p97")


def test_a_decode_time_lost_in_noise_is_not_reported_as_billions_of_tokens_per_s():
    class Generating(_TinyTask):
        generates_text = True

    class SlowPrefillRunner:   # generation timed faster than its own prefill: the difference is noise, not decode
        def __call__(self, inputs):
            end = time.perf_counter() + 0.002
            while time.perf_counter() < end:
                pass
            return inputs["input_ids"].float()

        def generate_greedy(self, prompt, max_new_tokens):
            return prompt

    variant = Variant(name="fake", task="tiny", backend="torch", device="cpu", precision="fp32",
                      runner=SlowPrefillRunner())
    row = sweep_batching(Generating(), variant, SweepConfig(batch_sizes=(1,), output_lens=(4,), point_seconds=0.2),
                         progress=False)[0]
    assert row["scenario"] == "generation-batching" and not row["failed"], row.get("error")
    assert row["latency_p50_ms"] < row["prefill_p50_ms"]
    # was: decode clamped to 1e-6 ms -> decode_p50_ms 0.0 and ~4e6 output tokens/s
    assert row["decode_p50_ms"] is None and row["output_tokens_per_s"] is None
    assert row["decode_note"].startswith(f"generation p50 {row['latency_p50_ms']:.2f} ms <= prefill p50")


def test_a_point_that_did_not_settle_is_timed_again_once(monkeypatch):
    import dataclasses

    import workbench.measure.batching as batching

    real, calls = batching.measure_latency, []

    def settles_second_time(*args, **kwargs):   # the first timing of a point is hit by a burst of load
        calls.append(1)
        return dataclasses.replace(real(*args, **kwargs), stable=len(calls) > 1)
    monkeypatch.setattr(batching, "measure_latency", settles_second_time)
    row = sweep_batching(_TinyTask(), _variant({}), SweepConfig(batch_sizes=(1,), point_seconds=0.2), progress=False)[0]
    assert len(calls) == 2 and row["stable"] is True and row["retried"] == 1
    calls.clear()
    monkeypatch.setattr(batching, "measure_latency", lambda *a, **k: dataclasses.replace(real(*a, **k), stable=False))
    rows = sweep_batching(_TinyTask(), _variant({}), SweepConfig(batch_sizes=(1,), point_seconds=0.2, retries=0),
                          progress=False)
    assert rows[0]["stable"] is False and "retried" not in rows[0]
