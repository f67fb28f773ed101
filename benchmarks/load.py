"""Load benchmark: the demo classifier bundle on a real Triton server (loopback), open-loop traffic, the M/D/1 honesty
check and the serving-config search, side by side in one run.

Arms, all measured in this process on this machine:

- **M/D/1**: a fixed-service-time model (``workbench.serving.sleeper``) under Poisson arrivals at rho 0.5 and 0.8;
  the error of the measured mean latency against S + rho*S / (2(1 - rho)), S from Triton's own statistics.
- **exported**: the bundle's ``config.pbtxt`` as ``workbench export`` wrote it (today's offline plan);
  **no-batching**: one request per execution; **searched**: the winner of ``search_config`` (coarse grid of
  instances x max batch, then queue delay x preferred size around the coarse winner). Goodput of each = the highest
  Poisson rate with >= 99% of requests within the p99 SLO, found by the same climb.
- Bundles: fp32 ONNX and dynamic int8 of the demo classifier, exported with the same SLO.
- **LM stream**: the demo causal LM as a decoupled (streaming) Triton Python model, open-loop at ``--lm-rates``:
  TTFT, TPOT and inter-token latency from the scheduled send (``workbench.serving.load_stream``).

The SLO, unless given, is 10 x the fp32 bundle's batch-1 p50 from its export sweep (measured, never assumed).

    python benchmarks/load.py                    # full run (~10-15 min on 2 idle cores)
    WORKBENCH_SMALL=1 python benchmarks/load.py  # CI-sized: fp32 only, small grid, one refinement, no LM

Last printed line: one JSON object with ``goodput_default_rps`` (exported config), ``goodput_searched_rps``,
``md1_mean_error_pct``, ``slo_ms``, ``percentile``, and per-bundle figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def md1_check(rhos, n_base: int, sleep_ms: float, log) -> dict:
    """Mean-latency error (%) against M/D/1 at each utilisation, and whether the client kept the rate."""
    from workbench.serving.load import open_loop
    from workbench.serving.serve_check import TritonServer
    from workbench.serving.sleeper import md1_mean_ms, sleeper_input, sleeper_repository

    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-md1-") as tmp:
        backends, repo, dist = sleeper_repository(Path(tmp), sleep_ms)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            open_loop(server.url, "sleeper", sleeper_input, 10, 20, warmup_s=0.0)  # stub warm-up
            for rho in rhos:
                rate = rho / (sleep_ms + 0.8) * 1e3   # nominal S: the sleep plus the Python backend's overhead
                res = open_loop(server.url, "sleeper", sleeper_input, rate, int(n_base / (1 - rho)), warmup_s=1.0)
                s = res.server["compute_ms"]
                predicted = md1_mean_ms(s, res.offered_rate_per_s * s / 1e3)
                err = 100 * (res.latency_mean_ms - predicted) / predicted
                out[str(rho)] = {"service_ms": s, "predicted_ms": round(predicted, 3), "mean_ms": res.latency_mean_ms,
                                 "error_pct": round(err, 2), "offered_per_s": res.offered_rate_per_s,
                                 "sent_per_s": res.achieved_rate_per_s, "valid": res.valid}
                log(f"  M/D/1 rho {rho}: predicted {predicted:.2f} ms, measured {res.latency_mean_ms:.2f} ms ({err:+.1f}%)")
    return out


def build_bundles(out: Path, threads: int, slo_ms: float | None, want_int8: bool, log,
                  point_seconds: float = 2.0) -> tuple[dict, float]:
    """{arm: bundle path} for the fp32 (and int8) demo classifier, exported with one SLO; returns (bundles, slo)."""
    from workbench.core import apply
    from workbench.measure.batching import SweepConfig, sweep_batching
    from workbench.serving.bundle import export_bundle
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


def search_arm(bundle: Path, slo_ms: float, small: bool, budget_s: float, table, log) -> dict:
    from workbench.serving.config_search import ClimbSettings, SearchSpace, search_config

    space = SearchSpace.small() if small else SearchSpace()
    settings = ClimbSettings(refine=1) if small else ClimbSettings()
    result = search_config(bundle, slo_ms, space=space, settings=settings, budget_s=budget_s, table=table,
                           progress=lambda m: log(f"    {m}"))
    print(f"\n{bundle.name}:\n{result.to_text()}")
    win, exp, nob = result.winner, result.exported, result.no_batching
    fig = lambda c: None if c is None else c.goodput_per_s  # noqa: E731
    return {"goodput_exported_rps": fig(exp), "goodput_no_batching_rps": fig(nob), "goodput_searched_rps": fig(win),
            "searched_config": win.config.label() if win else None, "knee_rps": win.knee_per_s if win else None,
            "knee_exported_rps": exp.knee_per_s if exp else None,
            "p99_at_goodput_ms": win.p99_at_goodput_ms if win else None,
            "p99_at_goodput_exported_ms": exp.p99_at_goodput_ms if exp else None,
            "candidates": len(result.candidates), "skipped": len(result.skipped),
            "capacity_sync_rps": result.capacity_per_s}


def lm_arm(out: Path, rates, new_tokens: int, log) -> dict:
    """The demo causal LM as a streaming Triton model: TTFT / TPOT / ITL (ms) at each offered rate, open loop."""
    from workbench.core import apply
    from workbench.serving.lm_stream import lm_stream_repository
    from workbench.serving.load_stream import open_loop_stream
    from workbench.serving.serve_check import TritonServer, triton_distribution
    from workbench.steps import ExportOnnxConfig
    from workbench.tasks import get_task

    task = get_task("causal-lm")
    onnx = apply(task.baseline(), ExportOnnxConfig(with_past=False, out_dir=str(out / "onnx")))
    prompt = [int(t) for t in task.example_inputs(1, 16)["input_ids"][0]]
    dist = triton_distribution()
    backends, repo = lm_stream_repository(onnx.artifact_path, "lm-stream", out / "lm-triton", dist, threads=2)
    figures = {}
    with TritonServer(repo, backends, dist, out / "lm-server.log") as server:
        body = lambda i: {"INPUT_IDS": prompt, "MAX_NEW_TOKENS": new_tokens}  # noqa: E731
        open_loop_stream(server.url, "lm-stream", body, 2, 4, warmup_s=0.0)   # ORT first runs
        for k, rate in enumerate(rates):
            res = open_loop_stream(server.url, "lm-stream", body, rate, max(int(rate * 20), 40), warmup_s=1.0, seed=k)
            keep = ("ttft_p50_ms", "ttft_p90_ms", "tpot_p50_ms", "tpot_p90_ms", "itl_p50_ms", "itl_p90_ms",
                    "itl_p99_ms")
            figures[str(rate)] = {**{k2: {**res.ttft, **res.tpot, **res.itl}.get(k2) for k2 in keep},
                                  "n": res.n_ok, "valid": res.valid, "sent_per_s": res.achieved_rate_per_s}
            log(f"  LM stream {rate}/s: TTFT p50 {res.ttft.get('ttft_p50_ms')} ms, TPOT p50 "
                f"{res.tpot.get('tpot_p50_ms')} ms, ITL p90 {res.itl.get('itl_p90_ms')} ms, valid {res.valid}")
    return {"prompt_tokens": len(prompt), "new_tokens": new_tokens, "rates": figures}


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
    args = p.parse_args(argv)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    from workbench.results import ResultsTable
    from workbench.runtime.cpu import cpu_isa
    from workbench.util.files import artifacts_root

    load_start = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        out = Path(args.out or tmp)
        log("M/D/1 honesty check ...")
        # small mode: a plumbing check (tests/serving/test_load.py holds the generator to 10% of M/D/1)
        md1 = md1_check((0.5, 0.8), 60 if small else 300, 15.0, log)
        log("building bundles ...")
        bundles, slo = build_bundles(out, args.threads, args.slo_ms, not args.skip_int8, log, 0.5 if small else 2.0)
        table = ResultsTable.for_study("load-benchmark", root=artifacts_root())
        arms = {}
        for name, bundle in bundles.items():
            log(f"searching {name} ...")
            arms[name] = search_arm(bundle, slo, small, args.budget_s, table, log)
        lm_rates = [float(r) for r in args.lm_rates.split(",") if r.strip()]
        lm = lm_arm(out, lm_rates, 16, log) if lm_rates else None
    print(f"\n{'bundle':8s} {'exported/s':>11s} {'no-batch/s':>11s} {'searched/s':>11s} {'ratio':>6s} {'knee/s':>8s} "
          f"{'p99@goodput ms':>15s}  searched config")
    for name, a in arms.items():
        ratio = (a["goodput_searched_rps"] / a["goodput_exported_rps"]
                 if a["goodput_searched_rps"] and a["goodput_exported_rps"] else None)
        a["searched_over_exported"] = round(ratio, 3) if ratio else None
        print(f"{name:8s} {str(a['goodput_exported_rps']):>11s} {str(a['goodput_no_batching_rps']):>11s} "
              f"{str(a['goodput_searched_rps']):>11s} {str(a['searched_over_exported']):>6s} {str(a['knee_rps']):>8s} "
              f"{str(a['p99_at_goodput_ms']):>15s}  {a['searched_config']}")
    errors = [abs(v["error_pct"]) for v in md1.values()]
    result = {"goodput_default_rps": arms["fp32"]["goodput_exported_rps"],
              "goodput_searched_rps": arms["fp32"]["goodput_searched_rps"],
              "searched_over_default": arms["fp32"]["searched_over_exported"],
              "md1_mean_error_pct": round(sum(errors) / len(errors), 2), "slo_ms": slo, "percentile": "p99",
              "attainment": 0.99, "bundles": arms, "md1": md1, "threads": args.threads, "cpu": cpu_isa(),
              "lm_stream": lm, "results": str(table.path), "seconds": round(time.perf_counter() - started, 1),
              "loadavg_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)]}
    for rate, f in (lm or {}).get("rates", {}).items():
        print(f"LM stream {rate}/s: TTFT p50 {f['ttft_p50_ms']} ms, TPOT p50 {f['tpot_p50_ms']} ms, ITL p90 "
              f"{f['itl_p90_ms']} ms ({f['n']} requests, valid {f['valid']})")
    print(f"\nM/D/1 mean |error| {result['md1_mean_error_pct']}%; 1-min load average at start/end: "
          f"{result['loadavg_1min']} on {os.cpu_count()} logical CPUs; ISA {result['cpu']}")
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    main()
