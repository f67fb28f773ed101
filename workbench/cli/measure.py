"""`workbench measure`: the baseline variants of a task (quality, latency, memory, size) into a results table."""
from __future__ import annotations

from workbench.cli import add_task_arguments, command


def _arguments(p) -> None:
    add_task_arguments(p)
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 8])
    p.add_argument("--seq-len", type=int, default=None, help="tokens per timing input (default: the task's)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on at most N test examples")
    p.add_argument("--time-budget", type=float, default=20.0,
                   help="seconds of timing per point at most (windows stop early once stable)")


@command("measure", "measure the baseline variants of a task into a results table", _arguments)
def cmd_measure(args) -> int:
    from tqdm.auto import tqdm

    from workbench.measure import environment_fingerprint, measure_variant
    from workbench.results import ResultsTable
    from workbench.tasks import get_task

    task = get_task(args.task, args.model, args.data)
    table = ResultsTable.for_study(args.study or args.task, environment=environment_fingerprint())
    variants = task.baselines(args.device) if args.device != "cpu" else [task.baseline("cpu")]
    jobs = [(v, b) for v in variants for b in args.batch_size]
    for variant, batch in tqdm(jobs, desc="measure"):
        # Quality does not depend on the timing batch size: evaluate once per variant.
        row = measure_variant(task, variant, batch, args.seq_len, quality=batch == args.batch_size[0],
                              eval_limit=args.eval_limit, threads=args.threads, max_seconds=args.time_budget)
        table.append(row)
    print(ResultsTable(rows=table.rows[-len(jobs):]).to_text())
    print(f"wrote {table.path}")
    return 0
