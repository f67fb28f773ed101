"""`workbench optimize`: from a model to a serving decision in one command, within a time budget.

Screens every CPU arm for this ISA, checks quality on the survivors (paired CI on validation), sweeps batching for
those within ``--max-drop``, confirms the cheapest at the SLO on fresh timings and test-split quality, then writes
the bundle, a short load check and ``decision.json`` (``workbench.optimize``). Re-running the same command resumes;
``--redo`` starts over; Ctrl-C keeps every row and prints the command that continues.
"""
from __future__ import annotations

from workbench.cli import command


def _arguments(p) -> None:
    p.add_argument("--task", required=True, choices=["text-classification", "causal-lm", "text2text"],
                   help="built-in task kind")
    p.add_argument("--model", help="local Hugging Face model directory (default: the demo weights)")
    p.add_argument("--data", help="JSONL/CSV eval data for --model")
    p.add_argument("--slo-ms", type=float, default=50.0, help="latency objective in ms (default 50); causal-lm: per "
                   "output token (ITL)")
    p.add_argument("--percentile", default="p99", choices=["p50", "p90", "p95", "p99"], help="SLO percentile")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="largest quality drop vs the baseline, upper end of the paired 95%% CI: points of accuracy; "
                        "causal-lm: %% perplexity increase")
    p.add_argument("--budget", default="20m", help="wall-time budget: seconds or 90s / 20m / 1h (default 20m)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--instances", default=None, help="comma-separated price-table instances to cost on, of the "
                   "device's kind (default: c7i.large on cpu, g6.xlarge on cuda)")
    p.add_argument("--traffic", default=None, help="requests per day for build vs buy, e.g. 5M/day")
    p.add_argument("--api", action="append", default=None, help="hosted API to compare with (repeatable)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads for every arm (default: torch's)")
    p.add_argument("--study", help="artifacts/<study>/ (default optimize-<task>)")
    p.add_argument("--redo", action="store_true", help="start over instead of resuming")
    p.add_argument("--no-bundle", action="store_true", help="stop after the decision (no bundle, no load check)")
    p.add_argument("--no-load", action="store_true", help="no open-loop load check of the bundle")


@command("optimize", "search the arms under a time budget: the cheapest at the SLO within --max-drop, with a bundle "
                     "and a report saying why each other arm lost", _arguments)
def cmd_optimize(args) -> int:
    import importlib.util

    from workbench.optimize import decision_text, optimize

    try:
        result = optimize(args.task, args.model, args.data, slo_ms=args.slo_ms, percentile=args.percentile,
                          max_drop=args.max_drop, budget_s=args.budget, device=args.device,
                          instances=([i.strip() for i in args.instances.split(",") if i.strip()]
                                     if args.instances else None),
                          traffic_per_day=args.traffic, apis=args.api, study=args.study, redo=args.redo,
                          bundle=not args.no_bundle, load_check=not args.no_load, threads=args.threads)
    except KeyboardInterrupt:
        return 130      # optimize printed where the rows are and the command that resumes
    print(decision_text(result.decision))
    print(f"wrote {result.study_dir / 'decision.json'}")
    if result.bundle:
        print(f"wrote {result.bundle}")
    for note in result.decision.get("notes") or []:
        print(f"note: {note}")
    if importlib.util.find_spec("workbench.ui.decision") is not None:
        from workbench.ui.report import build_report

        print(f"wrote {build_report(result.study_dir.name)}")
    return 0
