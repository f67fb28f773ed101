"""`workbench recommend`: which CPU arm to serve on this machine, from its ISA, a short timing run and an accuracy check.

The arms (:func:`workbench.measure.isa.applicable_arms`) that apply on this CPU are built from the fp32 baseline,
timed side by side (:func:`workbench.measure.interleaved.time_interleaved`, one batch shape) and evaluated on the
same validation examples as fp32 (paired bootstrap). The recommendation is the fastest arm whose drop is within the
tolerance: the upper end of its paired 95% CI is at most ``--tolerance-pts`` (fp32 itself when none is faster).
"""
from __future__ import annotations

import dataclasses
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


def build_arm(base, arm, cache: dict | None = None):
    """The arm's variant: its step configs applied in order to ``base``; ``cache`` shares common prefixes between
    arms (the ONNX export that ORT and OpenVINO arms start from is made once)."""
    from workbench.core import apply

    variant, cache = base, {} if cache is None else cache
    for config in arm.steps:
        key = (variant.id, repr(config))
        if key not in cache:
            cache[key] = apply(variant, config)
        variant = cache[key]
    return variant


def calibration_set(task, n_examples: int, folder):
    """The task's calibration split saved for the static int8 arms, or (None, why) when the task has none."""
    from workbench.steps.openvino import save_calibration_set

    try:
        return save_calibration_set(task.calibration_batches(n_examples, batch_size=8), folder), ""
    except NotImplementedError as exc:
        return None, str(exc)


def _quality(task, variant, limit):
    try:
        return task.evaluate(variant, split="validation", limit=limit), "validation"
    except KeyError:
        return task.evaluate(variant, split="test", limit=limit), "test"


def _drop(base_q, q) -> dict:
    """Paired drop (points) of ``q`` vs ``base_q`` on the same examples, with its 95% CI and description."""
    import numpy as np

    from workbench.util.stats import describe_drop, paired_quality_drop

    scale = 100 if base_q.metric == "accuracy" else 1
    a, b = np.asarray(base_q.per_example, dtype=float), np.asarray(q.per_example, dtype=float)
    drop, low, high = paired_quality_drop(a, b, base_q.higher_is_better, scale)
    return {"quality": round(q.value, 4), "drop_pts": round(drop, 3), "drop_ci_pts": [round(low, 3), round(high, 3)],
            "drop": describe_drop(drop, low, high, scale=1, digits=2)}


def pick(rows: list[dict], tolerance_pts: float) -> dict | None:
    """The fastest measured row whose paired drop CI ends at or below ``tolerance_pts`` (the baseline always counts)."""
    ok = [r for r in rows if r.get("p50_ms") is not None
          and (r.get("baseline") or (r.get("drop_ci_pts") and r["drop_ci_pts"][1] <= tolerance_pts))]
    return min(ok, key=lambda r: r["p50_ms"]) if ok else None


def _line(r: dict) -> str:
    head = f"  {r['arm']:20s}"
    if r["status"] != "measured":
        return f"{head} {r['status']}: {r['reason']}"
    drop = "baseline" if r.get("baseline") else (
        "no measurable loss" if r["drop"] == "no measurable loss" else f"drop {r['drop']:.2f} pts")
    ci = "" if r.get("baseline") else " [{:.2f}, {:.2f}]".format(*r["drop_ci_pts"])
    extra = f", compile {r['compile_seconds']:.1f} s" if r.get("compile_seconds") else ""
    unstable = "" if r["stable"] else " (unstable)"
    return (f"{head} p50 {r['p50_ms']:8.2f} ms{unstable}  {r['speedup']:5.2f}x  {drop}{ci}  "
            f"({r['reason']}{extra})")


@command("recommend", "time the CPU arms that suit this CPU's ISA, check accuracy vs fp32, recommend one", _arguments)
def cmd_recommend(args) -> int:
    from workbench.measure.interleaved import time_interleaved
    from workbench.measure.isa import applicable_arms
    from workbench.runtime.cpu import cpu_model_and_flags, isa_summary
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
    example = task.example_inputs(batch_size=batch, seq_len=seq)
    calib_n = args.calib or (32 if small else 128)
    calibration, calib_why = calibration_set(task, calib_n, artifacts_root() / (args.study or args.task))
    base = task.baseline("cpu")
    if args.threads is not None:
        from workbench.runtime import with_threads

        base = with_threads(base, args.threads)
    base = dataclasses.replace(base, meta={**base.meta, "example_inputs": example})  # compile warms up on it

    print(f"CPU: {cpu} | " + " ".join(f"{k} {'yes' if v else 'no'}" for k, v in isa.items()))
    rows, variants, cache = [], {}, {}
    for arm in applicable_arms(isa, calibration=calibration and str(calibration)):
        # the baseline arm is the one that applies no step
        row = {"arm": arm.name, "kind": arm.kind, "baseline": arm.applies and not arm.steps,
               "reason": f"{arm.reason} ({calib_why})" if calib_why and not arm.applies else arm.reason}
        if not arm.applies:
            rows.append({**row, "status": "skipped"})
            continue
        if arm.kind in args.skip:
            rows.append({**row, "status": "skipped", "reason": f"--skip {arm.kind} ({arm.reason})"})
            continue
        try:
            variants[arm.name] = build_arm(base, arm, cache)
            rows.append({**row, "status": "measured"})
        except Exception as exc:  # one arm failing (missing package, export error) must not hide the others
            rows.append({**row, "status": "failed", "reason": f"{type(exc).__name__}: {exc}"})

    timing = time_interleaved({name: (lambda v=v: v(example)) for name, v in variants.items()},
                              seconds=budget / 5, rounds=5, threads=args.threads, warmup=2 if small else 5)
    base_q, split = _quality(task, variants["torch-fp32"], limit)
    base_p50 = timing["torch-fp32"].p50_ms
    for row in rows:
        if row["status"] != "measured":
            continue
        v, t = variants[row["arm"]], timing[row["arm"]]
        row.update(p50_ms=round(t.p50_ms, 3), stable=t.stable, n_calls=t.n_calls,
                   speedup=round(base_p50 / t.p50_ms, 3), compile_seconds=v.meta.get("compile_seconds"))
        if row["baseline"]:
            row["quality"] = round(base_q.value, 4)
        else:
            row.update(_drop(base_q, _quality(task, v, limit)[0]))

    print(f"arms timed interleaved at batch {batch} x {seq}, ~{budget:g} s per arm; {base_q.metric} on "
          f"{base_q.n_examples} {split} examples, paired vs torch-fp32 (95% CI of the drop, in points)")
    for row in rows:
        print(_line(row))
    best = pick(rows, args.tolerance_pts)
    if best is None or best["baseline"]:
        print(f"recommendation: torch-fp32 (no arm is faster with its drop CI within {args.tolerance_pts:g} pts)")
    else:
        print(f"recommendation: {best['arm']} ({best['speedup']:.2f}x vs torch-fp32, {best['drop']}"
              f"{'' if best['drop'] == 'no measurable loss' else ' pts'}, CI upper end "
              f"{best['drop_ci_pts'][1]:.2f} <= {args.tolerance_pts:g} pts)")
    out = artifacts_root() / (args.study or args.task) / "recommend.json"
    report = {"cpu": cpu, "isa": isa, "calibration": str(calibration) if calibration else None, "batch_size": batch,
              "seq_len": seq, "time_budget_s": budget,
              "tolerance_pts": args.tolerance_pts, "eval_split": split, "eval_n": base_q.n_examples,
              "arms": rows, "recommendation": best["arm"] if best else "torch-fp32"}
    write_file_atomic(out, json.dumps(report, indent=2, default=str))
    print(f"wrote {out}")
    return 0
