"""`workbench` command line: one verb per job, same names as the Python API.

Each verb lives in a function ``cmd_<verb>(args)`` registered in ``COMMANDS`` with its argument setup.
Bad input exits non-zero with a one-line reason; every command prints where it wrote its files.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

COMMANDS: dict[str, tuple[Callable, Callable, str]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Register ``fn(args) -> int`` as verb ``name``; ``arguments(parser)`` adds its options."""

    def decorator(fn):
        COMMANDS[name] = (fn, arguments or (lambda p: None), help)
        return fn

    return decorator


def add_task_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, choices=["text-classification", "causal-lm"], help="built-in task kind")
    p.add_argument("--model", help="local Hugging Face model directory (default: the demo weights)")
    p.add_argument("--data", help="JSONL/CSV eval data for --model (text, label)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--study", help="results go to artifacts/<study>/ (default: the task name)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for every arm (default: torch's)")


def _measure_arguments(p: argparse.ArgumentParser) -> None:
    add_task_arguments(p)
    p.add_argument("--batch-size", type=int, nargs="+", default=[1, 8])
    p.add_argument("--seq-len", type=int, default=None, help="tokens per timing input (default: the task's)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on at most N test examples")
    p.add_argument("--time-budget", type=float, default=20.0,
                   help="seconds of timing per point at most (windows stop early once stable)")


@command("measure", "measure the baseline variants of a task into a results table", _measure_arguments)
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



def build_parser() -> argparse.ArgumentParser:
    _load_plugin_commands()
    parser = argparse.ArgumentParser(prog="workbench", description="Inference-optimisation workbench")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (_fn, add_args, help_text) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _load_plugin_commands() -> None:
    """Verbs defined beside their feature (``workbench/cli_<verb>.py``) register themselves on import."""
    import importlib
    import pkgutil

    import workbench

    for info in pkgutil.iter_modules(workbench.__path__):
        if info.name.startswith("cli_"):
            importlib.import_module(f"workbench.{info.name}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fn = COMMANDS[args.verb][0]
    try:
        return int(fn(args) or 0)
    except (FileNotFoundError, NotADirectoryError, ValueError, RuntimeError, TypeError) as err:
        print(f"workbench {args.verb}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    # Run through the package module so verbs in cli_<verb>.py register into the same COMMANDS dict.
    from workbench.cli import main as package_main

    sys.exit(package_main())
