"""`workbench measure`: the baseline variants of a task (quality, latency, memory, size) into a results table."""
from __future__ import annotations

from workbench.cli import add_task_arguments, command, task_from_args


def _arguments(p) -> None:
    add_task_arguments(p)
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 8])
    p.add_argument("--seq-len", type=int, default=None, help="tokens per timing input (default: the task's)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on at most N test examples")
    p.add_argument("--time-budget", type=float, default=20.0,
                   help="seconds of timing per point at most (windows stop early once stable)")
    p.add_argument("--redo", action="store_true",
                   help="measure points the study already holds for these variants and this environment again "
                        "(default: skip them, so a re-run or an interrupted run resumes without duplicates)")


@command("measure", "measure the baseline variants of a task into a results table", _arguments)
def cmd_measure(args) -> int:
    import torch
    from tqdm.auto import tqdm

    from workbench.measure import environment_fingerprint, measure_variant
    from workbench.results import ResultsTable

    task = task_from_args(args)
    table = ResultsTable.for_study(args.study or args.task, environment=environment_fingerprint())
    variants = task.baselines(args.device) if args.device != "cpu" else [task.baseline("cpu")]
    def saved(variant, batch):
        # the threads a row records: --threads, else the count the variant's runner runs at, else torch's
        threads = args.threads or getattr(variant.runner, "threads", None) or torch.get_num_threads()
        return table.saved_point(variant.id, "latency", batch, args.seq_len, threads=threads, task=task)

    jobs = [(v, b) for v in variants for b in args.batch_size]
    rows = {(v.id, b): None if args.redo else saved(v, b) for v, b in jobs}   # each point's row, saved or new
    todo = [(v, b) for v, b in jobs if rows[(v.id, b)] is None]
    if len(todo) < len(jobs):
        print(f"{len(jobs) - len(todo)} of {len(jobs)} points were already measured in this environment: their saved "
              "rows are shown (--redo measures them again)")
    for variant, batch in tqdm(todo, desc="measure"):
        # Quality does not depend on the timing batch size: evaluate once per variant.
        row = measure_variant(task, variant, batch, args.seq_len, quality=batch == args.batch_size[0],
                              eval_limit=args.eval_limit, threads=args.threads, max_seconds=args.time_budget)
        rows[(variant.id, batch)] = table.append(row)
    print(ResultsTable(rows=list(rows.values())).to_text())
    print(f"wrote {table.path}")
    return 0
