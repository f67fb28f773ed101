"""Quantisation benchmark: torch eager fp32 vs torch dynamic int8 vs ONNX Runtime fp32 / fused / dynamic int8 /
static int8 (per calibration method), side by side in one process, on the demo classifier and on a random-weight
BERT of 6 layers x 384 hidden.

Latency arms are interleaved (round-robin, several rounds; each arm's p50 is the median over rounds) so that load
from other processes hits every arm alike. Accuracy is measured on the demo classifier's whole test split (95%
bootstrap CI). Every row also goes to the ResultsTable study ``quantization-benchmark``.

    python benchmarks/quantization.py                 # full run (~10 min on 2 idle cores)
    WORKBENCH_SMALL=1 python benchmarks/quantization.py   # CI-sized: fewer rounds, eval subset

Last printed line: one JSON object with ``best_variant``, ``best_speedup`` (p50 ratio vs torch eager fp32 at the
headline shape), ``best_accuracy_drop_pts`` and per-arm figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch


def build_arms(base, calib_batches, out_dir, log):
    """Every variant of the benchmark, built from ``base`` (torch fp32) through the registered steps."""
    from workbench.core import apply
    from workbench.steps import ExportOnnxConfig, OptimizeConfig, QuantizeDynamicConfig, QuantizeStaticConfig, calibrate

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
    return arms


def interleaved_p50(arms: dict, inputs: dict, rounds: int, seconds: float, threads: int) -> dict:
    """p50/p90/min (ms) per arm from calls interleaved arm by arm, a few calls at a time.

    Fine-grained interleaving spreads load from other processes over every arm alike; the min shows what a quiet
    machine gives, and a p50 far above it says the run was contended (see ``stable``).
    """
    from workbench.measure.interleaved import time_interleaved

    calls = {name: (lambda variant=variant: variant(inputs)) for name, variant in arms.items()}
    return {name: t.as_dict() for name, t in time_interleaved(calls, rounds, seconds, threads).items()}


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
    from workbench.steps.quantize.diagnostics import diagnose, node_counts, op_time_profile
    from workbench.measure import environment_fingerprint
    from workbench.results import ResultsTable
    from workbench.tasks import get_task

    task = get_task("text-classification")
    base = task.baseline()
    arms = build_arms(base, list(task.calibration_batches(args.calib, batch_size=8)), args.out, log)
    table = ResultsTable.for_study("quantization-benchmark", environment=environment_fingerprint())
    shapes = {"b8": task.example_inputs(args.batch, args.seq), "b1": task.example_inputs(1, args.seq)}
    timing = {k: interleaved_p50(arms, x, args.rounds, args.seconds, args.threads) for k, x in shapes.items()}
    quality = {k: task.evaluate(v, limit=args.eval_limit) for k, v in arms.items()}
    out, base_acc = {}, quality["torch-fp32"].value
    for name, v in arms.items():
        fig = {"p50_ms_b8": timing["b8"][name]["p50_ms"], "p50_ms_b1": timing["b1"][name]["p50_ms"],
               "speedup_b8": speedup(timing["b8"], name), "speedup_b1": speedup(timing["b1"], name),
               "speedup_b8_min": speedup(timing["b8"], name, "min_ms"),
               "accuracy": round(quality[name].value, 4), "accuracy_ci": [round(quality[name].ci_low, 4),
                                                                          round(quality[name].ci_high, 4)],
               "accuracy_drop_pts": round((base_acc - quality[name].value) * 100, 2),
               "stable": timing["b8"][name]["stable"] and timing["b1"][name]["stable"]}
        if v.artifact_path:
            fig["size_mb"] = round(v.artifact_path.stat().st_size / 1e6, 3)
            counts = node_counts(v.artifact_path)
            fig["int8_nodes"], fig["float_nodes"] = counts["quantized_nodes"], counts["float_nodes"]
        out[name] = fig
        for shape_key, x in shapes.items():
            row = {"task": task.name, **v.describe(), "scenario": "latency", "batch_size": x["input_ids"].shape[0],
                   "seq_len": x["input_ids"].shape[1], "latency_p50_ms": timing[shape_key][name]["p50_ms"],
                   "config": v.config, **quality[name].as_row()}
            table.append(row)
    parent = {"latency_p50_ms": out["torch-fp32"]["p50_ms_b8"], "quality": base_acc, "metric": "accuracy"}
    for name, v in arms.items():
        diag = diagnose(parent, {"latency_p50_ms": out[name]["p50_ms_b8"], "quality": quality[name].value,
                                 "metric": "accuracy", "batch_size": args.batch, "seq_len": args.seq, "config": v.config},
                        v, accuracy_tolerance_pts=1.0)
        out[name]["flags"] = [f["flag"] for f in diag["flags"]]
    # Evidence of what limits the speed-up: where the time goes in the fastest int8 and the fp32 ORT graphs.
    ok = {k: f for k, f in out.items() if f["accuracy_drop_pts"] <= 1.0}
    best = max(ok, key=lambda k: ok[k]["speedup_b8"])
    profiles = {}
    for name in {best, "ort-fp32-o3"}:
        if arms[name].artifact_path:
            profiles[name] = dict(list(op_time_profile(arms[name].artifact_path, shapes["b8"], args.threads,
                                                       runs=5).items())[:6])
    return {"arms": out, "best": best, "profiles": profiles, "n_test": quality["torch-fp32"].n_examples}


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
    arms = build_arms(base, [batch(8) for _ in range(max(1, args.calib // 32))], args.out, log)
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
    return {"arms": out}


def print_table(title, arms, cols):
    print(f"\n{title}")
    print(f"{'arm':26s}" + "".join(f"{c:>18s}" for c in cols))
    for name, fig in arms.items():
        print(f"{name:26s}" + "".join(f"{str(fig.get(c, '-')):>18s}" for c in cols))


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

    from workbench.steps.quantize.diagnostics import cpu_isa

    load_start = os.getloadavg()[0]
    log("demo classifier: building arms ...")
    cls = classifier_section(args, log)
    cols = ["p50_ms_b8", "speedup_b8", "speedup_b8_min", "p50_ms_b1", "speedup_b1", "accuracy", "accuracy_drop_pts",
            "int8_nodes"]
    print_table(f"demo classifier (BERT 4x192), batch {args.batch} x {args.seq} and 1 x {args.seq}, "
                f"{cls['n_test']} test examples", cls["arms"], cols)
    print("\ntime share per op type (ORT profiler, batch 8):")
    for name, prof in cls["profiles"].items():
        print(f"  {name}: " + ", ".join(f"{op} {share:.0%}" for op, share in prof.items()))
    result = {"best_variant": cls["best"], "best_speedup": cls["arms"][cls["best"]]["speedup_b8"],
              "best_accuracy_drop_pts": cls["arms"][cls["best"]]["accuracy_drop_pts"],
              "best_speedup_b1": cls["arms"][cls["best"]]["speedup_b1"],
              "shape": [args.batch, args.seq], "threads": args.threads, "cpu": cpu_isa(), "classifier": cls["arms"],
              "op_time_share": cls["profiles"]}
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
