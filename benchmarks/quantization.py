"""Quantisation benchmark: every CPU arm of this ISA (torch eager fp32 / dynamic int8 / bf16 / torch.compile, frozen,
max-autotune / PT2E int8, ONNX Runtime fp32 / O3 / dynamic and static int8, OpenVINO fp32 / bf16 / int8, its fp32,
bf16 and static int8 also with each batch split across two streams) on the demo classifier, through the one arm layer
(``workbench.arms``): arms that do not apply here are rows with the reason.

Selection, then confirmation (``arms.runner.compare``): all arms are timed side by side at batch 8 (interleaved, the
same warm-up for every arm, a seeded order each round); each arm's accuracy drop against torch eager fp32 is a paired
bootstrap on the same validation examples; the pick is the fastest arm whose drop CI ends at or below 1 point (the one
rule: a CI that merely contains 0 is not enough); its speed-up is then measured again on a FRESH run of the winner
against fp32 alone. ``best_speedup`` is that confirmed ratio (``selection_speedup`` beside it), and its drop is
reported on the test split. Rows go to the ResultsTable study ``quantization-benchmark``.

    python benchmarks/quantization.py                 # full run (~20 min on 2 idle cores)
    WORKBENCH_SMALL=1 python benchmarks/quantization.py   # CI-sized: fewer rounds, eval subset

Last printed line: one JSON object (``best_variant``, ``best_speedup`` = ``confirmed_speedup``, ``selection_speedup``,
``best_speedup_b1``, ``best_accuracy_drop_pts`` / ``_ci_pts`` (test, paired), ``isa``, ``loadavg_1min``, per arm).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

TOLERANCE_PTS = 1.0
COLS = ["p50_ms_b8", "speedup_b8", "speedup_b8_min", "p50_ms_b1", "speedup_b1", "accuracy", "accuracy_drop_pts",
        "val_accuracy_drop_ci_pts", "eligible", "size_mb", "int8_nodes"]


def print_table(title, arms, cols):
    widths = {c: max(len(c), *(len(str(fig.get(c, "-"))) for fig in arms.values())) + 2 for c in cols}
    print(f"\n{title}\n{'arm':28s}" + "".join(f"{c:>{widths[c]}s}" for c in cols))
    for name, fig in arms.items():
        print(f"{name:28s}" + "".join(f"{str(fig.get(c, '-')):>{widths[c]}s}" for c in cols))


def main(argv=None) -> dict:
    import torch

    from workbench.util.settings import small_mode

    small = small_mode()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--rounds", type=int, default=2 if small else 5)
    p.add_argument("--seconds", type=float, default=2.0 if small else 6.0, help="time budget per arm per round")
    p.add_argument("--calib", type=int, default=32 if small else 128, help="calibration examples")
    p.add_argument("--eval-limit", type=int, default=200 if small else None, help="eval examples (default: all)")
    p.add_argument("--arms", nargs="*", help="run only these arms (torch-fp32 always runs)")
    p.add_argument("--skip-random-bert", action="store_true")
    p.add_argument("--out", default=None, help="folder for the ONNX / IR files (default $WORKBENCH_ARTIFACTS/onnx)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ["WORKBENCH_THREADS"] = str(args.threads)  # ORT sessions: same intra-op count as torch
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    from workbench.arms.cpu import catalogue, explain_winner
    from workbench.arms.cpu_study import arm_figures, harness_rows, random_bert_study, time_at
    from workbench.arms.runner import compare
    from workbench.measure import environment_fingerprint
    from workbench.results import ResultsTable
    from workbench.runtime.cpu import cpu_isa

    load_start = os.getloadavg()[0]
    cpu = cpu_isa()
    isa = {k: v for k, v in cpu.items() if k not in ("flags", "cpu")}
    arms, ctx = catalogue("text-classification", args.batch, args.seq, args.threads, args.eval_limit, args.calib,
                          extended=True, out_dir=args.out, report_split="test", isa=isa, log=log)
    log("demo classifier: building arms ...")
    timing = dict(rounds=args.rounds, seconds=args.seconds, calls_per_turn=3, warmup=3)
    with compare(arms, ctx, TOLERANCE_PTS, only=args.arms, isa=isa, keep=True, **timing) as result:
        b1_inputs = ctx.task.example_inputs(1, args.seq)
        log("batch 1: timing the measured arms ...")
        b1 = time_at(result, b1_inputs, threads=args.threads, **timing)
        figures = arm_figures(result, b1, TOLERANCE_PTS)
        table = ResultsTable.for_study("quantization-benchmark", environment=environment_fingerprint())
        for row in harness_rows(result, {"b8": (ctx.inputs, result.selection), "b1": (b1_inputs, b1)}, ctx.task,
                                args.threads):
            table.append(row)
        best = result.pick.arm
        not_run = {r["arm"]: r["reason"] for r in result.rows if r["status"] != "measured"}
        why, profile, shares = explain_winner(best, result.built[best].variant, ctx.inputs,
                                              {f"batch {args.batch}, confirmed": result.confirmed_speedup,
                                               "batch 1": figures[best]["speedup_b1"]}, isa, cpu["cpu"], not_run)
    base_row = result.row(result.baseline)
    print_table(f"demo classifier (BERT 4x192), batch {args.batch} x {args.seq} and 1 x {args.seq}, "
                f"{base_row['report_quality_n']} test examples", figures, COLS)
    for name, reason in not_run.items():
        print(f"{name:28s}not run: {reason}")
    print(f"\nkernel time shares of {best} (batch {args.batch}): "
          + ", ".join(f"{op} {share:.0%}" for op, share in profile.items()) + f" | by precision: {shares}")
    print(f"\nbest on this CPU: {why}\nselection run {result.selection_speedup}x -> fresh confirmation run "
          f"{result.confirmed_speedup}x vs torch-fp32 ({result.pick.reason})")
    fig = figures[best]
    out = {"best_variant": best, "best_speedup": result.confirmed_speedup,
           "confirmed_speedup": result.confirmed_speedup, "selection_speedup": result.selection_speedup,
           "best_accuracy_drop_pts": fig["accuracy_drop_pts"], "best_accuracy_drop_ci_pts": fig["accuracy_drop_ci_pts"],
           "best_speedup_b1": fig["speedup_b1"], "pick_checked": result.pick.checked,
           "selection": f"fastest at batch {args.batch} among arms whose validation drop vs torch-fp32 has a paired 95% "
                        f"CI upper end <= {TOLERANCE_PTS} pts ({base_row['quality_n']} examples); its speed-up "
                        f"confirmed on a fresh run against torch-fp32 alone; drop reported on "
                        f"{base_row['report_quality_n']} test examples",
           "results": str(table.path), "shape": [args.batch, args.seq], "threads": args.threads, "cpu": cpu,
           "isa": isa, "why": why, "skipped": not_run, "classifier": figures, "op_time_share": {best: profile},
           "precision_time_share": {best: shares}}
    if not args.skip_random_bert:
        log("random BERT 6x384: building arms ...")
        rb = random_bert_study(args.batch, args.seq, args.threads, args.calib, args.out, args.rounds, args.seconds, log)
        print_table(f"random-weight BERT 6x384, batch {args.batch} x {args.seq}", rb["arms"],
                    ["p50_ms_b8", "speedup_b8", "speedup_b8_min", "max_abs_logit_diff", "top1_agreement"])
        out["bert_6x384"] = rb["arms"]
    # Other processes on the CPU inflate the 2-thread torch arm most (OpenMP barriers): say how loaded it was.
    out["loadavg_1min"] = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    print(f"\n1-min load average at start/end: {out['loadavg_1min']} on {os.cpu_count()} logical CPUs")
    print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    from workbench.util.signals import terminate_as_interrupt

    terminate_as_interrupt()   # a kill stops the servers this run started, as Ctrl-C does
    main()
