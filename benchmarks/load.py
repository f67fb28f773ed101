"""Load benchmark: the demo classifier bundle on a real Triton server (loopback), open-loop traffic, the M/D/1 honesty
check, the coordinated-omission stall check and the serving-config search, side by side in one run.

The load client runs in its own process pinned to its own CPU, the server on the others
(``workbench.serving.load.pinned``); every point reports the client's CPU share, and a point where the client could
not keep up is neither a pass nor a miss (the climb stops; goodput ">= X (client limited)").

Arms, all measured in this process on this machine:

- **M/D/1**: a fixed-service-time model (``workbench.serving.load.sleeper``: sleeping, and CPU-bound) under Poisson
  arrivals at rho 0.5, 0.8, 0.9; mean, p90 and p99 errors against M/D/1 replayed on the run's own arrivals
  (``workbench.serving.load.md1``), S from Triton's statistics, client/HTTP overhead measured one at a time.
- **stall**: the model stalls 1 s mid-run; every request scheduled during it must show it, the p99 must move.
- **exported**: the bundle's ``config.pbtxt`` as ``workbench export`` wrote it; **no-batching**; **searched**: the
  winner of ``search_config``, then **confirmed** by a fresh climb. Headline: confirmed / the better baseline.
- **LM stream**: the demo causal LM bundle streamed (``workbench.serving.load.lm.sweep_lm``) at ``--lm-rates``.

The SLO, unless given, is 10 x the fp32 bundle's batch-1 p50 from its export sweep (measured, never assumed).

    python benchmarks/load.py                    # full run (~15 min on 2 idle cores)
    WORKBENCH_SMALL=1 python benchmarks/load.py  # CI-sized: fp32 only, small grid, one refinement, no LM

Last printed line: one JSON object with ``goodput_searched_rps`` (confirmed winner), ``goodput_best_baseline_rps``,
``searched_over_best_baseline``, ``goodput_default_rps`` (exported config), ``md1_mean_error_pct``,
``md1_p99_error_pct``, ``co_stall_detected``, ``slo_ms``, per-bundle figures with every point's
``client_cpu_share``, and the 1-min load average.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def print_table(bundles: dict) -> None:
    print(f"\n{'bundle':8s} {'exported/s':>11s} {'no-batch/s':>11s} {'winner/s':>9s} {'confirmed/s':>12s} "
          f"{'ratio':>6s}  searched config")
    for name, a in bundles.items():
        print(f"{name:8s} {str(a['goodput_exported_rps']):>11s} {str(a['goodput_no_batching_rps']):>11s} "
              f"{str(a['goodput_search_winner_rps']):>9s} {str(a['goodput_confirmed_rps']):>12s} "
              f"{str(a['searched_over_best_baseline']):>6s}  {a['searched_config']}")
        for which, why in a["binding"].items():
            print(f"  {which}: bound by {why}")


def main(argv=None) -> dict:
    from workbench.util.settings import small_mode

    small = small_mode()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--slo-ms", type=float, default=None, help="p99 SLO (default: 10 x fp32 batch-1 p50)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads the bundles are exported with")
    p.add_argument("--budget-s", type=float, default=120 if small else 420, help="search budget per bundle")
    p.add_argument("--skip-int8", action="store_true", default=small)
    p.add_argument("--out", default=None, help="work folder (default: a temp folder)")
    p.add_argument("--lm-rates", default="" if small else "1,2,4",
                   help="offered rates for the streaming LM arm, comma-separated ('' skips it)")
    p.add_argument("--lm-slo-ms", type=float, default=2000.0, help="TTFT SLO of the LM arm")
    p.add_argument("--skip-md1", action="store_true", help="skip the M/D/1 and stall checks")
    args = p.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    from workbench.results import ResultsTable
    from workbench.runtime.cpu import cpu_isa
    from workbench.serving.load.config_search import ClimbSettings, SearchSpace, search_config
    from workbench.serving.load.demo_bundles import causal_lm_bundle, classifier_bundles
    from workbench.serving.load.lm import sweep_lm
    from workbench.serving.load.md1_run import md1_on_triton, stall_on_triton
    from workbench.serving.load.summary import headline, lm_summary, search_summary
    from workbench.util.files import artifacts_root

    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        out = Path(args.out or tmp)
        md1, md1_spin, stall = {}, {}, None
        if not args.skip_md1:
            log("M/D/1 honesty check ...")
            # small mode: a plumbing check (tests/serving/test_load.py holds the generator to 15% of M/D/1)
            md1 = md1_on_triton(n_base=60 if small else 300, mode="sleep", log=log)
            md1_spin = md1_on_triton(n_base=60 if small else 200, mode="spin", log=log)
            log("coordinated-omission stall check ...")
            stall = stall_on_triton(log=log)
        log("building bundles ...")
        bundles, slo = classifier_bundles(out, args.threads, args.slo_ms, not args.skip_int8,
                                          0.5 if small else 2.0, log)
        table = ResultsTable.for_study("load-benchmark", root=artifacts_root())
        searched = {}
        for name, bundle in bundles.items():
            log(f"searching {name} ...")
            result = search_config(bundle, slo, space=SearchSpace.small() if small else SearchSpace(),
                                   settings=ClimbSettings(refine=1) if small else ClimbSettings(),
                                   budget_s=args.budget_s, table=table, progress=lambda m: log(f"    {m}"))
            print(f"\n{bundle.name}:\n{result.to_text()}")
            searched[name] = search_summary(result)
        lm_rates = [float(r) for r in args.lm_rates.split(",") if r.strip()]
        lm = None
        if lm_rates:
            res = sweep_lm(causal_lm_bundle(out), args.lm_slo_ms, lm_rates, 16,
                           progress=lambda m: log(f"  LM stream {m}"))
            print(res.to_text())
            lm = lm_summary(res)
    print_table(searched)
    result = {**headline(searched, md1, stall), "slo_ms": slo, "percentile": "p99", "attainment": 0.99,
              "bundles": searched, "md1": md1, "md1_cpu_bound": md1_spin, "threads": args.threads, "cpu": cpu_isa(),
              "lm_stream": lm, "results": str(table.path), "seconds": round(time.perf_counter() - started, 1),
              "loadavg_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)]}
    print(f"\nM/D/1 |error| mean {result['md1_mean_error_pct']}%, p99 {result['md1_p99_error_pct']}%; stall "
          f"detected {result['co_stall_detected']}; client CPU share at the highest rate "
          f"{result['client_cpu_share_at_highest_rate']}; 1-min load average at start/end: "
          f"{result['loadavg_1min']} on {os.cpu_count()} logical CPUs; ISA {result['cpu']}")
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    from workbench.util.signals import terminate_as_interrupt

    terminate_as_interrupt()   # a kill stops the servers this run started, as Ctrl-C does
    main()
