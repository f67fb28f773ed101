"""`workbench` command line: one verb per job, same names as the Python API.

Each verb lives in its own module here (``measure.py``, ``sweep.py``, ...): a function ``cmd_<verb>(args)`` registered
in ``COMMANDS`` with :func:`command`, beside its argument setup. A new verb is a new module; nothing else changes.
Bad input exits non-zero with a one-line reason; every command prints where it wrote its files.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from workbench.util.signals import terminate_as_interrupt

COMMANDS: dict[str, tuple[Callable, Callable, str]] = {}


def command(name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None):
    """Register ``fn(args) -> int`` as verb ``name``; ``arguments(parser)`` adds its options."""

    def decorator(fn):
        COMMANDS[name] = (fn, arguments or (lambda p: None), help)
        return fn

    return decorator


def add_task_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, choices=["text-classification", "causal-lm", "text2text"],
                   help="built-in task kind (text2text needs --model and --data)")
    p.add_argument("--model", help="local Hugging Face model directory (default: the demo weights)")
    p.add_argument("--data", help="JSONL/CSV eval data for --model (text, label | text | source, target)")
    add_loading_arguments(p)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    p.add_argument("--study", help="results go to artifacts/<study>/ (default: the task name)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for every arm (default: torch's)")


def add_loading_arguments(p: argparse.ArgumentParser) -> None:
    """The two opt-ins that loading never assumes: pickled weights and a model directory's own code."""
    p.add_argument("--allow-pickle", action="store_true",
                   help="accept pickled *.bin weights when the model has no safetensors (only files you trust)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run the model directory's own code (only directories you trust)")


def task_from_args(args: argparse.Namespace):
    """The task named by ``--task/--model/--data`` with the loading opt-ins the user gave (none by default)."""
    from workbench.tasks import get_task

    return get_task(args.task, args.model, args.data, trust_remote_code=getattr(args, "trust_remote_code", False),
                    allow_pickle=getattr(args, "allow_pickle", False))


def build_parser() -> argparse.ArgumentParser:
    _load_plugin_commands()
    parser = argparse.ArgumentParser(prog="workbench", description="Inference-optimisation workbench")
    sub = parser.add_subparsers(dest="verb", required=True)
    for name, (_fn, add_args, help_text) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _load_plugin_commands() -> None:
    """Each verb lives in its own module of this package (``workbench/cli/<verb>.py``) and registers on import."""
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    fn = COMMANDS[args.verb][0]
    terminate_as_interrupt()   # a kill stops the servers a verb started (vLLM, AIPerf, Triton), as Ctrl-C does
    try:
        return int(fn(args) or 0)
    except (FileNotFoundError, NotADirectoryError, ValueError, RuntimeError, TypeError) as err:
        print(f"workbench {args.verb}: error: {err}", file=sys.stderr)
        return 2
