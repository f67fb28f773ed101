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


def md1_check(rhos, n_base: int, sleep_ms: float, mode: str, log) -> dict:
    """Mean / p90 / p99 errors (%) against M/D/1 at each utilisation, with the client's figures."""
    from workbench.serving.bundle.triton_server import TritonServer
    from workbench.serving.load.md1 import client_overhead_ms, md1_check as check
    from workbench.serving.load.open_loop import open_loop
    from workbench.serving.load.sleeper import sleeper_input, sleeper_repository

    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-md1-") as tmp:
        backends, repo, dist = sleeper_repository(Path(tmp), sleep_ms, mode=mode)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            open_loop(server.url, "sleeper", sleeper_input, 10, 20, warmup_s=0.0)  # stub warm-up
            over = client_overhead_ms(server.url, "sleeper", sleeper_input)
            for k, rho in enumerate(rhos):
                rate = rho / over["sync_service_ms"] * 1e3
                res = open_loop(server.url, "sleeper", sleeper_input, rate, int(n_base / (1 - rho) ** 0.5),
                                warmup_s=1.0, seed=k)
                c = check(res, res.server["compute_ms"], over["overhead_ms"])
                out[str(rho)] = {**c, "valid": res.valid, "client_cpu_share": res.client["client_cpu_share"],
                                 "send_lag_p99_ms": res.send_lag_p99_ms, "offered_per_s": res.offered_rate_per_s,
                                 "sent_per_s": res.achieved_rate_per_s, **{k2: res.client[k2] for k2 in
                                                                           ("client_cpus", "server_cpus")}}
                log(f"  M/D/1 ({mode}) rho {c['rho']}: mean {c['mean_ms']} vs {c['predicted_mean_ms']} ms "
                    f"({c['mean_error_pct']:+.1f}%), p99 {c['p99_ms']} vs {c['predicted_p99_ms']} ms "
                    f"({c['p99_error_pct']:+.1f}%), client CPU {res.client['client_cpu_share']}")
    return out


def stall_arm(log, rate: float = 40.0, n: int = 240, at: int = 60, stall_ms: float = 1000.0) -> dict:
    """Coordinated omission: the sleeper stalls ``stall_ms`` at request ``at`` of an open-loop run."""
    from workbench.serving.bundle.triton_server import TritonServer
    from workbench.serving.load.md1 import client_overhead_ms, stall_check
    from workbench.serving.load.open_loop import open_loop
    from workbench.serving.load.sleeper import sleeper_input, sleeper_repository

    with tempfile.TemporaryDirectory(prefix="bench-stall-") as tmp:
        backends, repo, dist = sleeper_repository(Path(tmp), 15.0, stall_at=at, stall_ms=stall_ms)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            res = open_loop(server.url, "sleeper", sleeper_input, rate, n, warmup_s=0.0, seed=5)
            service = (res.server["compute_ms"] * n - stall_ms) / n
            over = client_overhead_ms(server.url, "sleeper", sleeper_input, n=20)
    out = stall_check(res, at, stall_ms, service, over["overhead_ms"])
    log(f"  stall {stall_ms:.0f} ms: {out['scheduled_during_stall']} requests scheduled during it, all show it: "
        f"{out['every_request_shows_it']}; p99 {out['p99_ms']} ms (replay {out['predicted_p99_ms']}, without the "
        f"stall {out['predicted_p99_without_stall_ms']})")
    return out


def build_bundles(out: Path, threads: int, slo_ms: float | None, want_int8: bool, log,
                  point_seconds: float = 2.0) -> tuple[dict, float]:
    """{arm: bundle path} for the fp32 (and int8) demo classifier, exported with one SLO; returns (bundles, slo)."""
    from workbench.core import apply
    from workbench.measure.batching import SweepConfig, sweep_batching
    from workbench.serving.bundle.export import export_bundle
    from workbench.steps import ExportOnnxConfig, QuantizeDynamicConfig
    from workbench.tasks import get_task

    task = get_task("text-classification")
    fp32 = apply(task.baseline(), ExportOnnxConfig(threads=threads, out_dir=str(out / "onnx")))
    arms = {"fp32": fp32}
    if want_int8:
        arms["int8"] = apply(fp32, QuantizeDynamicConfig(per_channel=True, reduce_range=True, out_dir=str(out / "onnx")))
    sweep = SweepConfig(batch_sizes=(1, 2, 4, 8, 16), seq_lens=(None,), point_seconds=point_seconds, threads=threads)
    rows = {name: sweep_batching(task, v, sweep, progress=False) for name, v in arms.items()}
    if slo_ms is None:  # 10 x the fp32 batch-1 median: a tight but reachable interactive SLO on this machine
        slo_ms = round(10 * next(r["latency_p50_ms"] for r in rows["fp32"] if r["batch_size"] == 1), 1)
    bundles = {}
    for name, v in arms.items():
        log(f"  exporting the {name} bundle (SLO {slo_ms} ms) ...")
        bundles[name] = export_bundle(v, rows[name], to=out / f"bundle-{name}", task=task, slo_ms=slo_ms,
                                      allow_unstable=True, name=f"clf-{name}")
    return bundles, slo_ms


def _curve(cand) -> list[dict]:
    """Every point of a candidate's climb: rate, p99, outcome and the figures that say which resource binds."""
    keys = ("offered_rate_per_s", "achieved_rate_per_s", "latency_p50_ms", "latency_p99_ms", "slo_attainment",
            "slo_outcome", "client_cpu_share", "send_lag_p99_ms", "server_queue_ms", "server_compute_ms",
            "server_mean_batch", "server_exec_share")
    return [{k: r.get(k) for k in keys} for r in cand.rows] if cand else []


def binding(cand) -> str | None:
    """Which resource ended the candidate's climb, read from its first failing (or last) point."""
    if not cand or not cand.rows:
        return None
    ends = [r for r in cand.rows if r.get("slo_outcome") != "pass"] or cand.rows[-1:]
    r = max(ends, key=lambda x: x["offered_rate_per_s"]) if ends else None
    if r.get("slo_outcome") == "client-limited":
        return f"client (CPU share {r.get('client_cpu_share')}, send lag p99 {r.get('send_lag_p99_ms')} ms)"
    instances = cand.config.instance_count
    share = r.get("server_exec_share")
    if share is not None and share >= 0.85 * instances:
        return (f"server (model executing {share:.2f} of the time over {instances} instance(s) at "
                f"{r['offered_rate_per_s']}/s; queue {r.get('server_queue_ms')} ms)")
    return (f"queue/latency (model executing {share} of the time, queue {r.get('server_queue_ms')} ms, batch "
            f"{r.get('server_mean_batch')}, at {r['offered_rate_per_s']}/s)")


def search_arm(bundle: Path, slo_ms: float, small: bool, budget_s: float, table, log) -> dict:
    from workbench.serving.load.config_search import ClimbSettings, SearchSpace, search_config

    space = SearchSpace.small() if small else SearchSpace()
    settings = ClimbSettings(refine=1) if small else ClimbSettings()
    result = search_config(bundle, slo_ms, space=space, settings=settings, budget_s=budget_s, table=table,
                           progress=lambda m: log(f"    {m}"))
    print(f"\n{bundle.name}:\n{result.to_text()}")
    win, conf, exp, nob, base = (result.winner, result.confirmed, result.exported, result.no_batching,
                                 result.best_baseline)
    fig = lambda c: None if c is None else c.goodput_per_s  # noqa: E731
    text = lambda c: None if c is None else c.goodput_text  # noqa: E731
    return {"goodput_exported_rps": fig(exp), "goodput_no_batching_rps": fig(nob),
            "goodput_search_winner_rps": fig(win), "goodput_confirmed_rps": fig(conf),
            "goodput_best_baseline_rps": fig(base), "best_baseline": base.stage if base else None,
            "goodput_text": {"exported": text(exp), "no_batching": text(nob), "winner": text(win),
                             "confirmed": text(conf)},
            "searched_over_best_baseline": result.headline_ratio,
            "searched_config": win.config.label() if win else None, "knee_rps": conf.knee_per_s if conf else None,
            "p99_at_goodput_ms": conf.p99_at_goodput_ms if conf else None,
            "p99_at_goodput_exported_ms": exp.p99_at_goodput_ms if exp else None,
            "binding": {"exported": binding(exp), "no_batching": binding(nob), "confirmed": binding(conf)},
            "curves": {c.config.label() + f" ({c.stage})": _curve(c) for c in result.candidates + [conf] if c},
            "candidates": len(result.candidates), "skipped": len(result.skipped),
            "capacity_sync_rps": result.capacity_per_s}


def lm_arm(out: Path, rates, new_tokens: int, slo_ms: float, log) -> dict:
    """The demo causal LM bundle streamed by ``workbench load``'s own sweep (sweep_lm): TTFT / TPOT / ITL per rate."""
    from workbench.core import apply
    from workbench.measure.batching import SweepConfig, sweep_batching
    from workbench.serving.bundle.export import export_bundle
    from workbench.serving.load.lm import sweep_lm
    from workbench.steps import ExportOnnxConfig
    from workbench.tasks import get_task

    task = get_task("causal-lm")
    onnx = apply(task.baseline(), ExportOnnxConfig(with_past=False, out_dir=str(out / "onnx-lm")))
    rows = sweep_batching(task, onnx, SweepConfig(batch_sizes=(1,), seq_lens=(16,), point_seconds=0.5,
                                                  forward_only=True), progress=False)
    bundle = export_bundle(onnx, rows, to=out / "bundle-lm", task=task, slo_ms=10_000, percentile="p50",
                           allow_unstable=True, n_reference=2)
    res = sweep_lm(bundle, slo_ms, rates, new_tokens, progress=lambda m: log(f"  LM stream {m}"))
    print(res.to_text())
    keep = ("offered_rate_per_s", "achieved_rate_per_s", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms",
            "itl_p90_ms", "n_measured", "slo_outcome", "slo_percentile", "client_cpu_share")
    return {"new_tokens": new_tokens, "slo_ms": slo_ms, "goodput_rps": res.goodput_per_s,
            "slo_percentile": res.slo_percentile, "points": [{k: r.get(k) for k in keep} for r in res.rows]}


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
    from workbench.util.files import artifacts_root

    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        out = Path(args.out or tmp)
        md1, md1_spin, stall = {}, {}, None
        if not args.skip_md1:
            log("M/D/1 honesty check ...")
            # small mode: a plumbing check (tests/serving/test_load.py holds the generator to 15% of M/D/1)
            md1 = md1_check((0.5, 0.8, 0.9), 60 if small else 300, 15.0, "sleep", log)
            md1_spin = md1_check((0.5, 0.8, 0.9), 60 if small else 200, 15.0, "spin", log)
            log("coordinated-omission stall check ...")
            stall = stall_arm(log)
        log("building bundles ...")
        bundles, slo = build_bundles(out, args.threads, args.slo_ms, not args.skip_int8, log, 0.5 if small else 2.0)
        table = ResultsTable.for_study("load-benchmark", root=artifacts_root())
        arms = {}
        for name, bundle in bundles.items():
            log(f"searching {name} ...")
            arms[name] = search_arm(bundle, slo, small, args.budget_s, table, log)
        lm_rates = [float(r) for r in args.lm_rates.split(",") if r.strip()]
        lm = lm_arm(out, lm_rates, 16, args.lm_slo_ms, log) if lm_rates else None
    print(f"\n{'bundle':8s} {'exported/s':>11s} {'no-batch/s':>11s} {'winner/s':>9s} {'confirmed/s':>12s} "
          f"{'ratio':>6s}  searched config")
    for name, a in arms.items():
        print(f"{name:8s} {str(a['goodput_exported_rps']):>11s} {str(a['goodput_no_batching_rps']):>11s} "
              f"{str(a['goodput_search_winner_rps']):>9s} {str(a['goodput_confirmed_rps']):>12s} "
              f"{str(a['searched_over_best_baseline']):>6s}  {a['searched_config']}")
        for which, why in a["binding"].items():
            print(f"  {which}: bound by {why}")
    mean_err = [abs(v["mean_error_pct"]) for v in md1.values()]
    p99_err = [abs(v["p99_error_pct"]) for v in md1.values()]
    fp32 = arms["fp32"]
    top = [p for c in fp32["curves"].values() for p in c]
    top = max(top, key=lambda p: p["offered_rate_per_s"]) if top else {}
    result = {"goodput_default_rps": fp32["goodput_exported_rps"],
              "goodput_no_batching_rps": fp32["goodput_no_batching_rps"],
              "goodput_best_baseline_rps": fp32["goodput_best_baseline_rps"],
              "goodput_search_winner_rps": fp32["goodput_search_winner_rps"],
              "goodput_searched_rps": fp32["goodput_confirmed_rps"],
              "searched_over_best_baseline": fp32["searched_over_best_baseline"],
              "winner_confirmed": fp32["goodput_confirmed_rps"] is not None,
              "client_cpu_share_at_highest_rate": top.get("client_cpu_share"),
              "highest_rate_rps": top.get("offered_rate_per_s"),
              "md1_mean_error_pct": round(sum(mean_err) / len(mean_err), 2) if mean_err else None,
              "md1_p99_error_pct": round(sum(p99_err) / len(p99_err), 2) if p99_err else None,
              "co_stall_detected": stall["detected"] if stall else None, "stall": stall,
              "slo_ms": slo, "percentile": "p99", "attainment": 0.99, "bundles": arms, "md1": md1,
              "md1_cpu_bound": md1_spin, "threads": args.threads, "cpu": cpu_isa(),
              "lm_stream": lm, "results": str(table.path), "seconds": round(time.perf_counter() - started, 1),
              "loadavg_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)]}
    print(f"\nM/D/1 |error| mean {result['md1_mean_error_pct']}%, p99 {result['md1_p99_error_pct']}%; stall "
          f"detected {result['co_stall_detected']}; client CPU share at the highest rate "
          f"{result['client_cpu_share_at_highest_rate']}; 1-min load average at start/end: "
          f"{result['loadavg_1min']} on {os.cpu_count()} logical CPUs; ISA {result['cpu']}")
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
