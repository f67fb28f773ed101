"""Optimize benchmark: does the budgeted search find what an exhaustive run finds, for a fraction of the time?

On the demo classifier (or, with ``--task causal-lm``, the demo LM: its LLM decode arms, SLO on per-output-token
latency, cost per 1M output tokens, drop = % perplexity increase), ``workbench.optimize.versus_exhaustive`` runs
optimize and the exhaustive reference (every arm x every batch size) each in a fresh process, prices the pick against
the exhaustive best, and interrupts and resumes optimize once.

Figures (last line, one JSON object): ``regret_pct`` = (the pick's $ per 1M at the SLO - the exhaustive best's) /
the exhaustive best's x 100, both priced on one footing (target <= 5): a different arm is timed side by side with the
exhaustive best in one interleaved run, each at its SLO batch; the same arm at the same batch is 0; the same arm at
another batch is priced on the exhaustive run's own sweep points. ``time_fraction`` = optimize wall / exhaustive wall
(target <= 0.35), ``resumed_rows_remeasured`` (target 0). Beside them: ``regret_across_runs_pct`` (optimize's
confirmed cost over the exhaustive run's best cost: two runs minutes apart, so it carries the drift between them:
separate points of one arm drift 20-45% between moments on a shared 2-core box, more than close arms differ) and
``choice_regret_pct`` (the picked arm's cost in the exhaustive run itself against that run's best), with the 1-min
load average at start and end and the ISA. Both runs build every arm; ``build_seconds`` says how much of each wall
that is. ``WORKBENCH_SMALL=1`` shrinks everything through the same code (32 eval examples, batch 1..8, short
windows).

    python benchmarks/optimize.py [--task causal-lm] [--skip-resume]
"""
from __future__ import annotations

import argparse
import json
import os


def main(argv=None) -> dict:
    from workbench.optimize.versus_exhaustive import Setup, compare, resume_check
    from workbench.runtime.cpu import cpu_model_and_flags, isa_summary
    from workbench.util.settings import small_mode

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="text-classification", choices=["text-classification", "causal-lm"],
                   help="causal-lm: the demo LM; --slo-ms is then per output token (ITL), --max-drop in %% "
                        "perplexity increase, costs per 1M output tokens")
    p.add_argument("--slo-ms", type=float, default=50.0)
    p.add_argument("--percentile", default="p99")
    p.add_argument("--max-drop", type=float, default=1.0)
    p.add_argument("--budget", type=float, default=1200.0, help="optimize's budget in seconds")
    p.add_argument("--instances", default="c7i.large")
    p.add_argument("--kill-after-rows", type=int, default=16, help="rows saved before the resume check's SIGINT")
    p.add_argument("--skip-resume", action="store_true")
    p.add_argument("--resume-only", action="store_true", help="only the kill-and-resume check")
    args = p.parse_args(argv)
    setup = Setup(args.task, args.slo_ms, args.percentile, args.max_drop, args.budget, args.instances)
    load_start = os.getloadavg()[0]
    if args.resume_only:
        out = {"benchmark": "optimize-resume", "loadavg_1min_start": round(load_start, 2),
               **resume_check(setup, args.kill_after_rows), "loadavg_1min_end": round(os.getloadavg()[0], 2)}
        print(json.dumps(out, default=str))
        return out
    cpu, flags = cpu_model_and_flags()
    isa = isa_summary(flags)
    print(f"CPU {cpu} | ISA {isa} | load average (1 min) {load_start:.2f} | small mode {small_mode()}", flush=True)
    figures = compare(setup, args.kill_after_rows, resume=not args.skip_resume)
    out = {"benchmark": "optimize", "task": args.task, "cpu": cpu, "isa": isa, "small_mode": small_mode(),
           "slo": {"ms": args.slo_ms, "percentile": args.percentile}, "max_drop": args.max_drop,
           "budget_s": args.budget, "loadavg_1min_start": round(load_start, 2),
           "loadavg_1min_end": round(os.getloadavg()[0], 2), **figures,
           "targets": {"regret_pct": "<= 5", "time_fraction": "<= 0.35", "resumed_rows_remeasured": 0}}
    print(json.dumps(out, default=str))
    return out


if __name__ == "__main__":
    from workbench.util.signals import terminate_as_interrupt

    terminate_as_interrupt()   # a kill stops the servers this run started, as Ctrl-C does
    main()
