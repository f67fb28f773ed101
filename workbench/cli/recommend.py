"""`workbench recommend`: which CPU arm to serve on this machine, from its ISA, a short timing run and an accuracy check.

The CPU arms of this ISA (:func:`workbench.arms.cpu.cpu_arms`) are built from the fp32 baseline and compared by the
one runner (:func:`workbench.arms.runner.compare`): timed side by side at one batch shape, accuracy on the same
validation examples as fp32 (paired bootstrap), the fastest arm whose drop CI ends within ``--tolerance-pts`` picked
(fp32 itself when none is faster), and its speed-up confirmed on a fresh run against fp32 alone.
"""
from __future__ import annotations

import json

from workbench.cli import add_loading_arguments, command, task_from_args

SKIPPABLE = ("int8", "bf16", "compile", "openvino")


def _arguments(p) -> None:
    p.add_argument("--task", required=True, choices=["text-classification", "causal-lm"], help="built-in task kind")
    p.add_argument("--model", help="local Hugging Face model directory (default: the demo weights)")
    p.add_argument("--data", help="JSONL/CSV eval data for --model (text, label)")
    add_loading_arguments(p)
    p.add_argument("--time-budget", type=float, default=None,
                   help="seconds of timed calls per arm (default 10; 1 with WORKBENCH_SMALL)")
    p.add_argument("--tolerance-pts", type=float, default=1.0,
                   help="largest acceptable quality drop vs fp32, in points (accuracy x 100), upper end of the paired CI")
    p.add_argument("--eval-limit", type=int, default=None,
                   help="validation examples for the accuracy check (default all; 32 with WORKBENCH_SMALL)")
    p.add_argument("--batch-size", type=int, default=None, help="timing batch (default 8; 4 with WORKBENCH_SMALL)")
    p.add_argument("--seq-len", type=int, default=None, help="timing sequence length (default 128; 64 small)")
    p.add_argument("--skip", nargs="*", default=[], choices=SKIPPABLE, help="arm kinds not to run (e.g. compile)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for every arm (default: torch's)")
    p.add_argument("--calib", type=int, default=None,
                   help="calibration examples for the static int8 arms (default 128; 32 with WORKBENCH_SMALL)")
    p.add_argument("--study", help="writes artifacts/<study>/recommend.json (default: the task name)")


@command("recommend", "time the CPU arms that suit this CPU's ISA, check accuracy vs fp32, recommend one", _arguments)
def cmd_recommend(args) -> int:
    from workbench.arms.cpu import calibration_set, cpu_arms, cpu_context
    from workbench.arms.rows import describe_row
    from workbench.arms.runner import compare
    from workbench.measure.environment import cpu_model_and_flags
    from workbench.measure.isa import isa_summary
    from workbench.util.files import artifacts_root, write_file_atomic
    from workbench.util.settings import small_mode

    small = small_mode()
    budget = args.time_budget if args.time_budget is not None else (1.0 if small else 10.0)
    limit = args.eval_limit if args.eval_limit is not None else (32 if small else None)
    batch, seq = args.batch_size or (4 if small else 8), args.seq_len or (64 if small else 128)
    if budget <= 0 or (limit is not None and limit < 2) or batch < 1 or seq < 1:
        raise ValueError("--time-budget, --batch-size and --seq-len must be positive and --eval-limit at least 2")

    task = task_from_args(args)
    cpu, flags = cpu_model_and_flags()
    isa = isa_summary(flags)
    study = artifacts_root() / (args.study or args.task)
    calibration, calib_why = calibration_set(task, args.calib or (32 if small else 128), study)
    print(f"CPU: {cpu} | " + " ".join(f"{k} {'yes' if v else 'no'}" for k, v in isa.items()))
    result = compare(cpu_arms(isa, calibration=calibration and str(calibration)),
                     cpu_context(task, batch, seq, args.threads, limit), tolerance=args.tolerance_pts,
                     skip_kinds=args.skip, rounds=5, seconds=budget / 5, warmup=2 if small else 5)
    base = result.row(result.baseline)
    print(f"arms timed interleaved at batch {batch} x {seq}, ~{budget:g} s per arm; {base['metric']} on "
          f"{base['quality_n']} validation examples, paired vs torch-fp32 (95% CI of the drop, in points)")
    for row in result.rows:
        if calib_why and "needs calibration data" in row["reason"]:
            row["reason"] += f" ({calib_why})"
        print(describe_row(row, 20))
    best = result.pick.row
    if best is None or best["baseline"]:
        print(f"recommendation: torch-fp32 ({result.pick.reason})")
    else:
        print(f"recommendation: {best['arm']} ({result.confirmed_speedup:.2f}x vs torch-fp32 confirmed on a fresh run, "
              f"{result.selection_speedup:.2f}x when selected; {result.pick.reason})")
    report = {"cpu": cpu, "isa": isa, "calibration": str(calibration) if calibration else None, "batch_size": batch,
              "seq_len": seq, "time_budget_s": budget, "tolerance_pts": args.tolerance_pts,
              "eval_split": "validation (test for a task without one)", "eval_n": base["quality_n"],
              "arms": result.rows, "recommendation": best["arm"] if best else "torch-fp32",
              "selection_speedup": result.selection_speedup, "confirmed_speedup": result.confirmed_speedup,
              "why": result.pick.reason}
    out = study / "recommend.json"
    write_file_atomic(out, json.dumps(report, indent=2, default=str))
    print(f"wrote {out}")
    return 0
