"""Quantisation benchmark: torch eager fp32 vs torch dynamic int8 vs ONNX Runtime fp32 / fused / dynamic int8 /
static int8 (per calibration method) vs the ISA-aware arms (PT2E static / dynamic int8 + torch.compile, OpenVINO
fp32 / bf16 / int8 weights / static int8) that apply on this CPU, side by side in one process, on the demo classifier
and on a random-weight BERT of 6 layers x 384 hidden. Arms that do not apply here are listed with the reason.

Latency arms are interleaved (round-robin, several rounds; each arm's percentiles come from all its timed calls) so
that load from other processes hits every arm alike. Accuracy is measured on the demo classifier's validation and
test splits (95% bootstrap CI), and each arm's drop against torch eager fp32 is a paired bootstrap difference on the
same examples. The best variant is chosen on the validation split (the fastest at batch 8 whose drop is not
measurably above 1 point) and its drop is reported on the test split: a drop whose paired CI contains 0 is reported
as "no measurable loss", not as a number. Every row goes to the ResultsTable study ``quantization-benchmark`` as a
full harness row (p50/p90/p99 with their call counts, throughput, real tokens/s, threads, size, quality).

    python benchmarks/quantization.py                 # full run (~10 min on 2 idle cores)
    WORKBENCH_SMALL=1 python benchmarks/quantization.py   # CI-sized: fewer rounds, eval subset

Last printed line: one JSON object with ``best_variant``, ``best_speedup`` (p50 ratio vs torch eager fp32 at the
headline shape), ``best_accuracy_drop_pts`` (test split, paired; a number or "no measurable loss") with its
``best_accuracy_drop_ci_pts``, and per-arm figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch


ISA_ARMS = ("torch-int8-pt2e-dynamic", "torch-int8-pt2e-static", "ov-fp32", "ov-bf16", "ov-int8-weights",
            "ov-int8-static")


def build_isa_arms(base, onnx_fp32, calib_batches, out_dir, log) -> tuple[dict, dict]:
    """(variants, skipped arm -> reason) for the ISA-aware arms of :func:`workbench.measure.isa.applicable_arms`.

    The OpenVINO arms start from the benchmark's ONNX export (its last step is applied to it, with ``out_dir``)."""
    import dataclasses

    from workbench.core import apply
    from workbench.measure.isa import applicable_arms
    from workbench.steps.openvino import save_calibration_set

    calib = save_calibration_set(calib_batches, out_dir and f"{out_dir}/calibration-sets")
    arms, skipped = {}, {}
    for arm in applicable_arms(calibration=str(calib)):
        if arm.name not in ISA_ARMS:
            continue
        if not arm.applies:
            skipped[arm.name] = arm.reason
            continue
        t0 = time.perf_counter()
        try:
            config = arm.config
            if hasattr(config, "out_dir"):
                arms[arm.name] = apply(onnx_fp32, dataclasses.replace(config, out_dir=out_dir))
            else:
                arms[arm.name] = apply(base, config)
        except Exception as exc:  # one arm failing must not hide the others: it is a skipped row with the reason
            skipped[arm.name] = f"failed here: {type(exc).__name__}: {exc}"
            continue
        compiled = arms[arm.name].meta.get("compile_seconds")
        log(f"  built {arm.name} in {time.perf_counter() - t0:.1f}s" + (f" (compile {compiled:.1f}s)" if compiled else ""))
    return arms, skipped


def build_arms(base, calib_batches, out_dir, log, skipped: dict | None = None):
    """Every variant of the benchmark, built from ``base`` (torch fp32) through the registered steps; ISA-aware arms
    that do not apply here go to ``skipped`` (arm -> reason)."""
    import dataclasses

    from workbench.core import apply
    from workbench.steps import ExportOnnxConfig, OptimizeConfig, QuantizeDynamicConfig, QuantizeStaticConfig, calibrate

    # PT2E exports the graph from an example batch, and its first call (the compilation) is timed apart at build time.
    base = dataclasses.replace(base, meta={**base.meta, "example_inputs": calib_batches[0]})
    arms = {"torch-fp32": base}
    arms["torch-int8-dynamic"] = apply(base, QuantizeDynamicConfig.per_channel_int8())
    onnx_fp32 = apply(base, ExportOnnxConfig(out_dir=out_dir))
    arms["ort-fp32"] = onnx_fp32
    fused = apply(onnx_fp32, OptimizeConfig(level="O3", out_dir=out_dir))
    arms["ort-fp32-o3"] = fused
    arms["ort-int8-dynamic"] = apply(onnx_fp32, QuantizeDynamicConfig(per_channel=True, reduce_range=True, out_dir=out_dir))
    arms["ort-int8-dynamic-o3"] = apply(fused, QuantizeDynamicConfig(per_channel=True, reduce_range=True,
                                                                     out_dir=out_dir))
    for method in ("minmax", "entropy", "percentile"):
        t0 = time.perf_counter()
        ranges = calibrate(onnx_fp32, calib_batches, method=method, out_dir=out_dir)
        log(f"  calibrated {method} on {ranges.n_examples} examples in {time.perf_counter() - t0:.1f}s")
        arms[f"ort-int8-static-{method}"] = apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder),
                                                                                  out_dir=out_dir))
    isa_arms, isa_skipped = build_isa_arms(base, onnx_fp32, calib_batches, out_dir, log)
    if skipped is not None:
        skipped.update(isa_skipped)
    return {**arms, **isa_arms}


CALLS_PER_TURN = 3        # calls each arm makes per turn of a round (time_interleaved's default)
ACCURACY_TOLERANCE_PTS = 1.0


def time_arms(arms: dict, inputs: dict, rounds: int, seconds: float, threads: int) -> tuple[dict, dict]:
    """(ArmTiming per arm, first-call ms per arm) from calls interleaved arm by arm, a few calls at a time.

    The first call of each arm at this shape is timed apart (allocation, kernel choice), then ``time_interleaved``
    warms up and times every arm in turn. Fine-grained interleaving spreads load from other processes over every arm
    alike; the min shows what a quiet machine gives, and a p50 far above it says the run was contended (``stable``).
    """
    from workbench.measure.interleaved import time_interleaved
    from workbench.measure.timing import timed_call

    calls = {name: (lambda variant=variant: variant(inputs)) for name, variant in arms.items()}
    first = {name: timed_call(fn)[0] for name, fn in calls.items()}
    return time_interleaved(calls, rounds, seconds, threads, calls_per_turn=CALLS_PER_TURN), first


def interleaved_p50(arms: dict, inputs: dict, rounds: int, seconds: float, threads: int) -> dict:
    """p50/p90/min (ms), n_calls and stable per arm from interleaved calls (see :func:`time_arms`)."""
    timing, _first = time_arms(arms, inputs, rounds, seconds, threads)
    return {name: t.as_dict() for name, t in timing.items()}


def harness_columns(timing, items: int, tokens: int | None, threads: int, first_ms: float) -> dict:
    """The timing columns a harness row has (``timing.timing_columns``) for one interleaved arm.

    Every percentile comes from the arm's own timed calls (None, with a note, where there are too few for it), with
    ``n_calls``; a "window" is one round's turn of the arm (``CALLS_PER_TURN`` calls), so ``window_spread`` says how
    far the arm's per-round medians moved. ``stable`` is the interleaved notion: p50 within 1.5x the fastest call.
    """
    import dataclasses

    import numpy as np

    from workbench.measure.timing import LatencyStats, enough_samples, percentile_ranks, timing_columns

    arr = np.asarray(timing.samples_ms)
    turns = [float(np.median(arr[i:i + CALLS_PER_TURN])) for i in range(0, len(arr), CALLS_PER_TURN)]
    values = {f"{name}_ms": float(np.percentile(arr, rank)) if enough_samples(name, len(arr)) else None
              for name, rank in percentile_ranks()}
    values.update(mean_ms=float(arr.mean()), std_ms=float(arr.std()), min_ms=float(arr.min()), max_ms=float(arr.max()),
                  first_call_ms=float(first_ms), n_calls=len(arr), n_windows=len(turns),
                  window_spread=max(turns[-3:]) / max(min(turns[-3:]), 1e-9), stable=bool(timing.stable),
                  threads=int(threads), samples_ms=tuple(timing.samples_ms))
    fields = {f.name for f in dataclasses.fields(LatencyStats)}
    stats = LatencyStats(**{k: v for k, v in values.items() if k in fields})
    return {**timing_columns(stats, items, tokens), "timing": "interleaved"}


def paired_drop(parent, child) -> tuple[float, float, float]:
    """Accuracy drop parent -> child in points with its paired bootstrap 95% CI (same examples, resampled together)."""
    from workbench.util.stats import paired_bootstrap_diff

    drop, low, high = paired_bootstrap_diff(parent.per_example, child.per_example)
    return 100 * drop, 100 * low, 100 * high


def eligible(drop_pts: float, low_pts: float, high_pts: float, tolerance_pts: float = ACCURACY_TOLERANCE_PTS) -> bool:
    """An arm may be picked when its drop is not measurable (paired CI contains 0) or is at most ``tolerance_pts``."""
    from workbench.util.stats import measurable

    return not measurable(low_pts, high_pts) or drop_pts <= tolerance_pts


def speedup(timing: dict, name: str, figure: str = "p50_ms", base: str = "torch-fp32") -> float:
    """How many times faster arm ``name`` is than ``base`` by ``figure`` (p50, or min: what a quiet machine gives)."""
    return round(timing[base][figure] / timing[name][figure], 3)


def random_bert(layers=6, hidden=384):
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=8192, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=hidden // 64,
                     intermediate_size=4 * hidden, num_labels=12, max_position_embeddings=512)
    return BertForSequenceClassification(cfg).eval()


def classifier_section(args, log) -> dict:
    from workbench.measure import environment_fingerprint
    from workbench.util.stats import describe_drop
    from workbench.measure.size import variant_size
    from workbench.results import ResultsTable
    from workbench.runtime import runner_threads
    from workbench.steps.quantize.diagnostics import diagnose, node_counts
    from workbench.tasks import get_task

    task = get_task("text-classification")
    base = task.baseline()
    skipped: dict = {}
    arms = build_arms(base, list(task.calibration_batches(args.calib, batch_size=8)), args.out, log, skipped)
    # Rows are stamped with this machine's environment id (saved beside them with its fingerprint).
    table = ResultsTable.for_study("quantization-benchmark", environment=environment_fingerprint())
    shapes = {"b8": task.example_inputs(args.batch, args.seq), "b1": task.example_inputs(1, args.seq)}
    timed = {k: time_arms(arms, x, args.rounds, args.seconds, args.threads) for k, x in shapes.items()}
    timing = {k: {name: t.as_dict() for name, t in arms_t.items()} for k, (arms_t, _first) in timed.items()}
    # Chosen on validation, reported on test: the pick does not ride on the test split's noise.
    validation = {k: task.evaluate(v, split="validation", limit=args.eval_limit) for k, v in arms.items()}
    quality = {k: task.evaluate(v, limit=args.eval_limit) for k, v in arms.items()}
    out, base_acc = {}, quality["torch-fp32"].value
    for name, v in arms.items():
        val_drop, val_low, val_high = paired_drop(validation["torch-fp32"], validation[name])
        drop, low, high = paired_drop(quality["torch-fp32"], quality[name])
        size = variant_size(v)
        fig = {"p50_ms_b8": timing["b8"][name]["p50_ms"], "p50_ms_b1": timing["b1"][name]["p50_ms"],
               "n_calls_b8": timing["b8"][name]["n_calls"], "n_calls_b1": timing["b1"][name]["n_calls"],
               "speedup_b8": speedup(timing["b8"], name), "speedup_b1": speedup(timing["b1"], name),
               "speedup_b8_min": speedup(timing["b8"], name, "min_ms"),
               "accuracy": round(quality[name].value, 4), "accuracy_ci": [round(quality[name].ci_low, 4),
                                                                          round(quality[name].ci_high, 4)],
               "accuracy_drop_pts": describe_drop(drop, low, high, scale=1),
               "accuracy_drop_ci_pts": [round(low, 2), round(high, 2)],
               "val_accuracy_drop_pts": round(val_drop, 2), "val_accuracy_drop_ci_pts": [round(val_low, 2),
                                                                                        round(val_high, 2)],
               "eligible": eligible(val_drop, val_low, val_high),
               "stable": timing["b8"][name]["stable"] and timing["b1"][name]["stable"],
               "size_mb": size.get("size_mb"), "int8_param_share": size.get("int8_param_share")}
        if v.artifact_path:
            counts = node_counts(v.artifact_path)
            fig["int8_nodes"], fig["float_nodes"] = counts["quantized_nodes"], counts["float_nodes"]
        out[name] = fig
        threads = runner_threads(v) or args.threads
        for shape_key, x in shapes.items():
            arm_timing, first = timed[shape_key][0][name], timed[shape_key][1][name]
            row = {"task": task.name, **v.describe(), "scenario": "latency", "batch_size": x["input_ids"].shape[0],
                   "seq_len": x["input_ids"].shape[1],
                   **harness_columns(arm_timing, x["input_ids"].shape[0], task.tokens_in(x), threads, first),
                   "config": v.config, **size, **quality[name].as_row(),
                   "accuracy_drop_pts": fig["accuracy_drop_pts"], "accuracy_drop_ci_pts": fig["accuracy_drop_ci_pts"],
                   "val_accuracy_drop_ci_pts": fig["val_accuracy_drop_ci_pts"]}
            table.append(row)
    parent = {"latency_p50_ms": out["torch-fp32"]["p50_ms_b8"], "quality": base_acc, "metric": "accuracy"}
    for name, v in arms.items():
        diag = diagnose(parent, {"latency_p50_ms": out[name]["p50_ms_b8"], "quality": quality[name].value,
                                 "metric": "accuracy", "batch_size": args.batch, "seq_len": args.seq, "config": v.config},
                        v, accuracy_tolerance_pts=ACCURACY_TOLERANCE_PTS, parent_quality=quality["torch-fp32"],
                        quality=quality[name])
        out[name]["flags"] = [f["flag"] for f in diag["flags"]]
    # Evidence of what limits the speed-up: where the time goes in the fastest int8 and the fp32 ORT graphs.
    ok = {k: f for k, f in out.items() if f["eligible"]}
    best = max(ok, key=lambda k: ok[k]["speedup_b8"])
    from workbench.measure.isa import precision_time_shares
    from workbench.runtime.profile import kernel_profile

    profiles, shares = {}, {}
    for name in dict.fromkeys([best, "ort-fp32-o3", "torch-fp32"]):
        profile = kernel_profile(arms[name], shapes["b8"], runs=3)
        if profile:
            profiles[name], shares[name] = dict(list(profile.items())[:6]), precision_time_shares(profile)
    return {"arms": out, "best": best, "profiles": profiles, "precision_shares": shares, "skipped": skipped,
            "n_test": quality["torch-fp32"].n_examples, "n_validation": validation["torch-fp32"].n_examples,
            "results": str(table.path)}


def random_bert_section(args, log) -> dict:
    from workbench.core import Variant
    from workbench.runtime.torch_runner import TorchRunner

    model = random_bert()
    base = Variant(name="torch-fp32", task="bert-6x384-random", backend="torch", device="cpu", precision="fp32",
                   runner=TorchRunner(model, "cpu", ("input_ids", "token_type_ids", "attention_mask")), model=model)
    gen = torch.Generator().manual_seed(1)
    batch = lambda b: {"input_ids": torch.randint(0, 8192, (b, args.seq), generator=gen),  # noqa: E731
                       "attention_mask": torch.ones(b, args.seq, dtype=torch.long),
                       "token_type_ids": torch.zeros(b, args.seq, dtype=torch.long)}
    skipped: dict = {}
    arms = build_arms(base, [batch(8) for _ in range(max(1, args.calib // 32))], args.out, log, skipped)
    inputs = batch(args.batch)
    timing = interleaved_p50(arms, inputs, args.rounds, args.seconds, args.threads)
    ref = base(inputs)
    out = {}
    for name, v in arms.items():
        got = v(inputs)
        out[name] = {"p50_ms_b8": timing[name]["p50_ms"], "stable": timing[name]["stable"],
                     "speedup_b8": speedup(timing, name), "speedup_b8_min": speedup(timing, name, "min_ms"),
                     "max_abs_logit_diff": round(float((got - ref).abs().max()), 4),
                     "top1_agreement": round(float((got.argmax(-1) == ref.argmax(-1)).float().mean()), 3)}
    return {"arms": out, "skipped": skipped}


def print_table(title, arms, cols):
    widths = {c: max(len(c), *(len(str(fig.get(c, "-"))) for fig in arms.values())) + 2 for c in cols}
    print(f"\n{title}")
    print(f"{'arm':26s}" + "".join(f"{c:>{widths[c]}s}" for c in cols))
    for name, fig in arms.items():
        print(f"{name:26s}" + "".join(f"{str(fig.get(c, '-')):>{widths[c]}s}" for c in cols))


def main(argv=None) -> dict:
    from workbench.util.settings import small_mode

    small = small_mode()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2 if small else 5)
    p.add_argument("--seconds", type=float, default=2.0 if small else 6.0, help="time budget per arm per round")
    p.add_argument("--calib", type=int, default=32 if small else 128, help="calibration examples")
    p.add_argument("--eval-limit", type=int, default=200 if small else None, help="test examples (default: all)")
    p.add_argument("--skip-random-bert", action="store_true")
    p.add_argument("--out", default=None, help="folder for the ONNX files (default $WORKBENCH_ARTIFACTS/onnx)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ["WORKBENCH_THREADS"] = str(args.threads)  # ORT sessions: same intra-op count as torch
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    from workbench.measure.isa import won_because
    from workbench.runtime.cpu import cpu_isa

    load_start = os.getloadavg()[0]
    log("demo classifier: building arms ...")
    cls = classifier_section(args, log)
    cols = ["p50_ms_b8", "speedup_b8", "speedup_b8_min", "p50_ms_b1", "speedup_b1", "accuracy", "accuracy_drop_pts",
            "eligible", "size_mb", "int8_nodes"]
    print_table(f"demo classifier (BERT 4x192), batch {args.batch} x {args.seq} and 1 x {args.seq}, "
                f"{cls['n_test']} test examples", cls["arms"], cols)
    for name, why in cls["skipped"].items():
        print(f"{name:26s}not run: {why}")
    print(f"\ntime share per kernel / op (profilers, batch {args.batch}):")
    for name, prof in cls["profiles"].items():
        print(f"  {name}: " + ", ".join(f"{op} {share:.0%}" for op, share in prof.items())
              + f"  | by precision: {cls['precision_shares'].get(name)}")
    best = cls["arms"][cls["best"]]
    isa = {k: v for k, v in cpu_isa().items() if k != "flags"}
    why = won_because(cls["best"], best, isa, cls["precision_shares"].get(cls["best"]), cls["skipped"])
    print(f"\nbest on this CPU: {why}")
    result = {"best_variant": cls["best"], "best_speedup": best["speedup_b8"],
              "best_accuracy_drop_pts": best["accuracy_drop_pts"],
              "best_accuracy_drop_ci_pts": best["accuracy_drop_ci_pts"],
              "best_speedup_b1": best["speedup_b1"],
              "selection": f"fastest at batch {args.batch} among arms whose validation drop vs torch-fp32 (paired 95% "
                           f"CI, {cls['n_validation']} examples) is not measurably above {ACCURACY_TOLERANCE_PTS} "
                           f"pts; drop reported on {cls['n_test']} test examples",
              "results": cls["results"],
              "shape": [args.batch, args.seq], "threads": args.threads, "cpu": cpu_isa(), "isa": isa,
              "why": why, "skipped": cls["skipped"], "classifier": cls["arms"], "op_time_share": cls["profiles"],
              "precision_time_share": cls["precision_shares"]}
    if not args.skip_random_bert:
        log("random BERT 6x384: building arms ...")
        rb = random_bert_section(args, log)
        print_table(f"random-weight BERT 6x384, batch {args.batch} x {args.seq}", rb["arms"],
                    ["p50_ms_b8", "speedup_b8", "speedup_b8_min", "max_abs_logit_diff", "top1_agreement"])
        result["bert_6x384"] = rb["arms"]
    # Other processes on the CPU inflate the 2-thread torch arm most (OpenMP barriers): say how loaded it was.
    result["loadavg_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print(f"\n1-min load average at start/end: {result['loadavg_1min']} on {os.cpu_count()} logical CPUs")
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
