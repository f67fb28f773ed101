"""The quantisation study over the CPU arms: what ``benchmarks/quantization.py`` reports beyond ``compare``.

- :func:`time_at`: the arms of a comparison timed again at another shape (batch 1), interleaved as ever.
- :func:`arm_figures`: per arm, the benchmark's figures (p50 and speed-up at both shapes, test accuracy with the
  paired drop and its CI, the validation drop it was chosen on, eligibility, size, int8 nodes, diagnostic flags).
- :func:`harness_rows`: full results rows (every percentile with its call count, throughput, threads, size, quality)
  for a ``ResultsTable``.
- :func:`random_bert_study`: the same arms on a random-weight BERT (no task: logit agreement with fp32 instead of
  accuracy, so its pick is unchecked).

Example:
    >>> result = compare(*catalogue(extended=True, report_split="test"), tolerance=1.0, keep=True)  # doctest: +SKIP
    >>> figures = arm_figures(result, time_at(result, task.example_inputs(1, 128)), tolerance=1.0)
"""
from __future__ import annotations

from workbench.arms.base import BuiltArm
from workbench.arms.runner import Comparison, TimedRun, time_arms


def time_at(result: Comparison, inputs, rounds: int = 5, seconds: float | None = None, calls_per_turn: int = 3,
            warmup: int = 3, threads: int | None = None) -> TimedRun:
    """Every measured arm of ``result`` (built, kept open) timed on ``inputs``, interleaved with the same warm-up."""
    arms = {r["arm"]: result.built[r["arm"]] for r in result.rows
            if r["status"] == "measured" and result.built[r["arm"]].variant is not None}
    calls = {name: BuiltArm(call=lambda v=b.variant: v(inputs)) for name, b in arms.items()}
    return time_arms(calls, rounds=rounds, seconds=seconds, calls_per_turn=calls_per_turn, warmup=warmup,
                     threads=threads)


def arm_figures(result: Comparison, b1: TimedRun | None, tolerance: float) -> dict[str, dict]:
    """Per measured arm: the benchmark's figures. ``accuracy*`` are on the report split (test), ``val_*`` on the
    selection split (validation) the arm was chosen on; ``eligible`` is the one rule on the selection drop."""
    from workbench.measure.size import variant_size
    from workbench.steps.quantize.diagnostics import diagnose, node_counts

    out = {}
    base = result.row(result.baseline)
    for row in (r for r in result.rows if r["status"] == "measured"):
        name, variant = row["arm"], result.built[row["arm"]].variant
        size = variant_size(variant) if variant is not None else {}
        report_ci = row.get("report_drop_ci_pts")
        fig = {"p50_ms_b8": row["p50_ms"], "n_calls_b8": row["n_calls"], "speedup_b8": row["speedup"],
               "speedup_b8_min": row["speedup_min"],
               "p50_ms_b1": _fig(b1, name, "p50_ms"), "n_calls_b1": _fig(b1, name, "n_calls"),
               "speedup_b1": b1.ratio(result.baseline, name) if b1 else None,
               "accuracy": row.get("report_quality"), "accuracy_ci": row.get("report_quality_ci"),
               "accuracy_drop_pts": 0.0 if row["baseline"] else row.get("report_drop"),
               "accuracy_drop_ci_pts": [0.0, 0.0] if row["baseline"] else report_ci,
               "val_accuracy_drop_pts": 0.0 if row["baseline"] else row["drop_pts"],
               "val_accuracy_drop_ci_pts": [0.0, 0.0] if row["baseline"] else row["drop_ci_pts"],
               "eligible": row["eligible"], "stable": bool(row["stable"] and (not b1 or _fig(b1, name, "stable"))),
               "size_mb": size.get("size_mb"), "int8_param_share": size.get("int8_param_share"),
               "compile_seconds": row.get("compile_seconds")}
        if variant is not None and variant.artifact_path:
            counts = node_counts(variant.artifact_path)
            fig["int8_nodes"], fig["float_nodes"] = counts["quantized_nodes"], counts["float_nodes"]
        if variant is not None and row.get("report_quality") is not None:
            parent = {"latency_p50_ms": base["p50_ms"], "quality": base["report_quality"], "metric": base["metric"]}
            quality = {"latency_p50_ms": row["p50_ms"], "quality": row["report_quality"], "metric": row["metric"],
                       "config": variant.config}
            flags = diagnose(parent, quality, variant, accuracy_tolerance_pts=tolerance,
                             parent_quality=result.reports.get(result.baseline),
                             quality=result.reports.get(name))["flags"]
            fig["flags"] = [f["flag"] for f in flags]
        out[name] = fig
    return out


def _fig(run: TimedRun | None, name: str, attr: str):
    if run is None or name not in run.timing:
        return None
    value = getattr(run.timing[name], attr)
    return round(value, 3) if isinstance(value, float) else value


def harness_rows(result: Comparison, runs: dict, task, threads: int, calls_per_turn: int = 3) -> list[dict]:
    """ResultsTable rows: one per measured arm x shape (``runs``: label -> (inputs, TimedRun)); ``threads``: the
    count the arms ran at where a runner does not say its own."""
    from workbench.measure.interleaved import timing_row
    from workbench.measure.size import variant_size
    from workbench.runtime import runner_threads

    rows = []
    for row in (r for r in result.rows if r["status"] == "measured"):
        variant = result.built[row["arm"]].variant
        for inputs, run in runs.values():
            if variant is None or row["arm"] not in run.timing:
                continue
            batch, seq = inputs["input_ids"].shape
            count = runner_threads(variant) or threads
            rows.append({"task": task.name, **variant.describe(), "arm": row["arm"], "scenario": "latency",
                         "batch_size": batch, "seq_len": seq,
                         **timing_row(run.timing[row["arm"]], batch, task.tokens_in(inputs), count,
                                      run.first_ms.get(row["arm"]), calls_per_turn),
                         "config": variant.config, **variant_size(variant), "metric": row["metric"],
                         "quality": row.get("report_quality"), "quality_n": row.get("report_quality_n"),
                         "accuracy_drop_pts": row.get("report_drop"),
                         "accuracy_drop_ci_pts": row.get("report_drop_ci_pts"),
                         "val_accuracy_drop_ci_pts": row["drop_ci_pts"], "eligible": row["eligible"]})
    return rows


def random_bert(layers: int = 6, hidden: int = 384, seed: int = 0):
    """A random-weight BERT classifier (12 labels) and its fp32 torch variant."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from workbench.core import Variant
    from workbench.runtime.torch_runner import TorchRunner

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=8192, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
                     intermediate_size=4 * hidden, num_labels=12, max_position_embeddings=512)
    model = BertForSequenceClassification(cfg).eval()
    return Variant(name="torch-fp32", task=f"bert-{layers}x{hidden}-random", backend="torch", device="cpu",
                   precision="fp32", runner=TorchRunner(model, "cpu", ("input_ids", "token_type_ids",
                                                                       "attention_mask")), model=model)


def random_bert_study(batch: int, seq: int, threads: int | None, calib: int, out_dir, rounds: int,
                      seconds: float | None, log=None) -> dict:
    """The CPU arms on a random 6x384 BERT: p50 and speed-up at ``batch`` x ``seq``, max |logit diff| and top-1
    agreement with fp32 on the timed batch (no labels: quality is unchecked)."""
    import torch

    from workbench.arms.cpu import context_for, cpu_arms
    from workbench.arms.runner import compare
    from workbench.steps.openvino import save_calibration_set

    gen = torch.Generator().manual_seed(1)

    def batch_of(b):
        return {"input_ids": torch.randint(0, 8192, (b, seq), generator=gen),
                "attention_mask": torch.ones(b, seq, dtype=torch.long),
                "token_type_ids": torch.zeros(b, seq, dtype=torch.long)}

    calib_batches = [batch_of(8) for _ in range(max(1, calib // 32))]
    calibration = save_calibration_set(calib_batches, out_dir and f"{out_dir}/calibration-sets")
    inputs = batch_of(batch)
    ctx = context_for(random_bert(), inputs, None, threads, out_dir=out_dir, calibration_batches=calib_batches, log=log)
    with compare(cpu_arms(calibration=str(calibration), extended=True), ctx, tolerance=0.0, measure_quality=False,
                 rounds=rounds, seconds=seconds, keep=True) as result:
        ref = ctx.base(inputs)
        out = {}
        for row in (r for r in result.rows if r["status"] == "measured"):
            got = result.built[row["arm"]].variant(inputs)
            out[row["arm"]] = {"p50_ms_b8": row["p50_ms"], "stable": row["stable"], "speedup_b8": row["speedup"],
                               "speedup_b8_min": row["speedup_min"],
                               "max_abs_logit_diff": round(float((got - ref).abs().max()), 4),
                               "top1_agreement": round(float((got.argmax(-1) == ref.argmax(-1)).float().mean()), 3)}
        skipped = {r["arm"]: r["reason"] for r in result.rows if r["status"] != "measured"}
    return {"arms": out, "skipped": skipped}


__all__ = ["time_at", "arm_figures", "harness_rows", "random_bert", "random_bert_study"]
