"""`workbench distill`: train a KD student (and optionally its labels-only ablation), measure, save it."""
from __future__ import annotations

from workbench.cli import add_task_arguments, command, task_from_args


def _arguments(p) -> None:
    add_task_arguments(p)
    p.add_argument("--train-data", help="JSONL/CSV training text (text, label) for --model (default: demo train split)")
    p.add_argument("--extra-data", help="unlabelled text scored by the teacher: 'demo-corpus' or a JSONL/CSV file")
    p.add_argument("--layers", type=int, help="student layers (default: half the teacher's)")
    p.add_argument("--hidden", type=int, help="student hidden size (default: the teacher's)")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the KD term (0 = labels only)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--max-steps", type=int, help="cap on optimiser steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ablation", action="store_true", help="also train the same student on labels only (no KD)")
    p.add_argument("--save", help="save the student as a HF directory here (default: artifacts/<study>/students/)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on at most N test examples")


@command("distill", "distil a smaller student from the task's model; measure teacher and students", _arguments)
def cmd_distill(args) -> int:
    from pathlib import Path

    from workbench.core import apply
    from workbench.steps.distill.student import save_student
    from workbench.measure import environment_fingerprint, measure_variant
    from workbench.results import ResultsTable
    from workbench.steps.distill import DistillConfig, family_of

    if args.device not in ("cpu", "auto"):
        raise ValueError("distill trains on CPU: use --device cpu")
    # Config and task load first: bad values and paths fail here, before any training.
    config = DistillConfig(num_layers=args.layers, hidden_size=args.hidden, temperature=args.temperature,
                           alpha=args.alpha, epochs=args.epochs, lr=args.lr, max_steps=args.max_steps, seed=args.seed,
                           train_data=args.train_data, extra_data=args.extra_data)
    task = task_from_args(args)
    teacher = task.baseline("cpu")
    students = [apply(teacher, config)] + ([apply(teacher, config.no_kd())] if args.ablation else [])
    table = ResultsTable.for_study(args.study or f"{args.task}-distill", environment=environment_fingerprint())
    for variant in [teacher, *students]:
        row = measure_variant(task, variant, 1, eval_limit=args.eval_limit, threads=args.threads)
        table.append({**row, "family": family_of(variant.lineage)})
    out = Path(args.save) if args.save else table.path.parent / "students" / f"{students[0].name}-{students[0].id}"
    save_student(students[0].model, task.tokenizer, out, {"variant_id": students[0].id, "config": students[0].config})
    print(ResultsTable(rows=table.rows[-1 - len(students):]).to_text())
    print(f"wrote {table.path}")
    print(f"wrote student {out}")
    return 0
