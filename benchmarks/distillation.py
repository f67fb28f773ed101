"""Distillation benchmark on the demo classifier: teacher vs KD student vs no-KD student, and KD student + int8.

The int8 arms stack the quantisation steps on the KD student: torch dynamic int8, and ONNX export -> O2 fusions
-> ORT dynamic int8 (the headline ``stacked_*`` figures, the route a serving bundle takes).

    python benchmarks/distillation.py                 # ~4 min on 2 idle CPU cores
    python benchmarks/distillation.py --epochs 1      # quicker, weaker students

All arms are measured side by side in this process with the same thread count: accuracy on the full test split
with a bootstrap 95% CI, p50 latency (batch 1, 128 tokens) interleaved over rounds, size. KD vs no-KD and every
arm vs the teacher (retention, accuracy drop) are compared per example on the same examples (paired bootstrap 95%
CI); a drop whose CI contains 0 is "no measurable loss", a KD - no-KD CI containing 0 "no measurable difference".
Rows go to artifacts/distillation/results.jsonl.
The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import torch


def correctness(task, variant) -> np.ndarray:
    from workbench.tasks.text_classification import predict_labels

    texts, labels = task.splits["test"]
    return np.array([p == y for p, y in zip(predict_labels(variant, task.tokenizer, texts), labels)], dtype=float)


def interleaved_rows(task, arms: dict, threads: int, rounds: int) -> dict:
    """measure_variant for every arm, ``rounds`` times in turn; keep each arm's median-p50 row (load drift cancels)."""
    from workbench.measure import measure_variant
    from workbench.measure.interleaved import round_robin

    measure = {name: (lambda variant=variant: measure_variant(task, variant, 1, None, quality=False, threads=threads,
                                                              max_seconds=10)) for name, variant in arms.items()}
    rows = {name: [] for name in arms}
    for _round, name, row in round_robin(measure, rounds):
        rows[name].append(row)
    return {name: sorted(rs, key=lambda r: r["latency_p50_ms"])[len(rs) // 2] for name, rs in rows.items()}


def main(argv=None) -> dict:
    from workbench.core import apply
    from workbench.steps.distill.quant import int8_of
    from workbench.measure import environment_fingerprint
    from workbench.util.stats import (accuracy_with_ci, describe_drop, measurable, paired_bootstrap_diff,
                                      paired_bootstrap_ratio)
    from workbench.results import ResultsTable
    from workbench.steps.distill import DistillConfig, family_of
    from workbench.tasks import get_task

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=3, help="epochs of the labelled train split (the step budget)")
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--extra-data", default="demo-corpus", help="unlabelled transfer text for KD ('none' to skip)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    p.add_argument("--train-threads", type=int, default=None,
                   help="threads while training (default --threads; 1 is faster on an oversubscribed CPU)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.train_threads or args.threads)

    task = get_task("text-classification")
    teacher = task.baseline()
    # Same optimiser-step budget for both arms: KD may see extra unlabelled text in those steps, no-KD cannot use it.
    steps = args.epochs * math.ceil(len(task.splits["train"][0]) / 32)
    cfg = DistillConfig.half_depth(num_layers=args.layers, epochs=args.epochs, max_steps=steps, batch_size=32,
                                   extra_data=None if args.extra_data == "none" else args.extra_data)
    kd, nokd = apply(teacher, cfg), apply(teacher, cfg.no_kd())
    torch.set_num_threads(args.threads)  # every measured arm (and each ORT session made below) uses these
    arms = {"teacher_fp32": teacher, "kd_student": kd, "nokd_student": nokd,
            "kd_student_int8_torch": int8_of(kd, "torch"), "kd_student_int8_ort": int8_of(kd, "onnxruntime")}

    correct = {name: correctness(task, v) for name, v in arms.items()}
    rows = interleaved_rows(task, arms, args.threads, args.rounds)
    table = ResultsTable.for_study("distillation", environment=environment_fingerprint())
    figures = {}
    for name, variant in arms.items():
        acc, low, high = accuracy_with_ci(correct[name])
        row = {**rows[name], "metric": "accuracy", "quality": acc, "quality_ci_low": low, "quality_ci_high": high,
               "quality_n": len(correct[name]), "higher_is_better": True, "arm": name,
               "family": family_of(variant.lineage), "train_seconds": variant.meta.get("step_seconds")}
        table.append(row)
        figures[name] = {"accuracy": round(acc, 4), "ci": [round(low, 4), round(high, 4)],
                         "p50_ms": rows[name]["latency_p50_ms"], "stable": rows[name]["stable"],
                         "size_mb": rows[name].get("size_mb"), "params": rows[name].get("params"),
                         "lineage": [step for step, _cfg in variant.lineage],
                         "step_seconds": variant.meta.get("step_seconds"), "family": row["family"]}
    t = figures["teacher_fp32"]
    for name, f in figures.items():
        f["speedup"] = round(t["p50_ms"] / f["p50_ms"], 3)
        # Against the teacher on the same test examples (paired bootstrap): retention and the accuracy drop, which is
        # "no measurable loss" when its 95% CI contains 0.
        ratio, r_low, r_high = paired_bootstrap_ratio(correct[name], correct["teacher_fp32"])
        drop, low, high = paired_bootstrap_diff(correct["teacher_fp32"], correct[name])
        f["retention"], f["retention_paired_ci"] = round(ratio, 4), [round(r_low, 4), round(r_high, 4)]
        f["drop_vs_teacher_pts"] = describe_drop(drop, low, high)
        f["drop_vs_teacher_paired_ci_pts"] = [round(100 * low, 2), round(100 * high, 2)]
    diff, d_low, d_high = paired_bootstrap_diff(correct["kd_student"], correct["nokd_student"])
    k, n = figures["kd_student"], figures["nokd_student"]
    stacked = figures["kd_student_int8_ort"]
    summary = {
        "student_retention": k["retention"], "student_retention_paired_ci": k["retention_paired_ci"],
        "student_speedup": k["speedup"],
        "kd_minus_nokd_pts": round(100 * diff, 2),
        "kd_minus_nokd_paired_ci_pts": [round(100 * d_low, 2), round(100 * d_high, 2)],
        "kd_vs_nokd": ("no measurable difference" if not measurable(d_low, d_high)
                       else "KD better" if d_low > 0 else "no-KD better"),
        "kd_beats_nokd_paired_ci": d_low > 0, "kd_ci_disjoint_from_nokd_ci": k["ci"][0] > n["ci"][1],
        # Headline stacked arm: distil -> export -> optimise -> int8 in ONNX Runtime, the route a serving bundle takes.
        "stacked_speedup": stacked["speedup"],
        "stacked_retention": stacked["retention"], "stacked_retention_paired_ci": stacked["retention_paired_ci"],
        "stacked_drop_vs_teacher_pts": stacked["drop_vs_teacher_pts"],
        "stacked_arm": "kd_student_int8_ort", "threads": args.threads, "timing": "batch 1, 128 tokens, interleaved median p50",
        "config": {k_: v for k_, v in kd.config.items() if v is not None}, "arms": figures,
        "cpu": environment_fingerprint().get("cpu"), "results": str(table.path),
    }
    print(ResultsTable(rows=table.rows[-len(arms):]).to_text(("arm", "family", "quality", "quality_ci_low",
                                                                  "quality_ci_high", "latency_p50_ms", "size_mb")))
    print(f"KD - no-KD: {summary['kd_minus_nokd_pts']} pts, paired 95% CI {summary['kd_minus_nokd_paired_ci_pts']} "
          f"({summary['kd_vs_nokd']})")
    print(json.dumps(summary, default=str))
    return summary


if __name__ == "__main__":
    main()
