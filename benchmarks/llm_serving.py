"""LLM serving on a real engine: the 134M Llama shape (12 x 768, vocab 32000, random weights: speed does not depend on
them) exported for vLLM (CPU build) in bf16 / int8 / int4, the engine config search under the SLO, the cost workloads
and the prefix-cache trial on the confirmed winner's server, and served quality on the demo LM.

All the work is the package's (:mod:`workbench.serving.engine`: ``synthetic`` (the model), ``footprint``, ``export``,
``search``, ``trials``, ``quality``, ``inprocess`` + ``predict``: the served goodput predicted from in-process step
times of each checkpoint and its error, ``versus_triton``: the Triton Python full-sequence path it replaces, same
model and SLO); this script calls them and prints. Candidates are measured one after another (each
needs its own engine start-up), so the 1-min load average is printed at the start and the end.

    python benchmarks/llm_serving.py            # 134M Llama, full search (~30 min with native bf16; longer on AVX2)
    python benchmarks/llm_serving.py --quick    # 134M Llama, bf16 + int8, small search (~12 min with native bf16;
                                                # 59 min on a 2-core AVX2 CPU, where vLLM's emulated bf16 is slow)
    python benchmarks/llm_serving.py --small    # tiny shapes (also WORKBENCH_SMALL=1)

Last printed line: one JSON object with the targets' figures.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", default=os.environ.get("WORKBENCH_SMALL") == "1")
    p.add_argument("--quick", action="store_true", help="bf16 + int8 only, the small search, shorter points")
    p.add_argument("--out", default=None, help="work folder (default artifacts/llm_serving/<mode>)")
    p.add_argument("--budget-s", type=float, default=None, help="search budget after the default (s)")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    from workbench.core import apply
    from workbench.measure.cost import get_price
    from workbench.runtime.cpu import cpu_isa
    from workbench.serving.engine import envs, trials
    from workbench.serving.engine.export import export_engine
    from workbench.serving.engine.figures import measured_or_reason, serving_figures
    from workbench.serving.engine.footprint import export_peak_rss
    from workbench.serving.engine.inprocess import predict_search
    from workbench.serving.engine.quality import served_quality_of_baseline
    from workbench.serving.engine.search import search_engine
    from workbench.serving.engine.server import split_cpus
    from workbench.serving.engine.synthetic import random_llama_checkpoint
    from workbench.serving.engine.versus_triton import triton_python_near_idle
    from workbench.steps.weight_only import WeightOnlyConfig
    from workbench.tasks import get_task
    from workbench.tasks.causal_lm import CausalLMTask
    from workbench.util.files import artifacts_root

    args = parse(argv)
    ok, why = envs.available()
    if not ok:
        raise SystemExit(why)
    load_start, t_start = os.getloadavg()[0], time.perf_counter()
    mode = "small" if args.small else "quick" if args.quick else "full"
    work = Path(args.out) if args.out else artifacts_root() / "llm_serving" / mode
    work.mkdir(parents=True, exist_ok=True)
    model_dir = random_llama_checkpoint(work / "llama-bf16", args.small)
    log(f"model {model_dir}; peak RSS probe (load bf16 + int8 + export) ...")
    rss = export_peak_rss(model_dir, work / "rss-int8")
    log(f"  {rss}")
    task = CausalLMTask(model_dir, {"test": ["x"]}, name="llama134m" if not args.small else "llama-tiny")
    base = task.baseline()
    precisions = {"bf16": base, "int8": apply(base, WeightOnlyConfig.int8())}
    if not args.quick:
        precisions["int4"] = apply(base, WeightOnlyConfig.int4())
    bundles = {p: export_engine(v, task, to=work / f"bundle-{p}", overwrite=True) for p, v in precisions.items()}
    params_m = round(sum(p.numel() for p in task.load_model().parameters()) / 1e6, 1)
    del base, precisions

    extra: dict = {}   # the confirmed winner's trials (cost workloads, prefix cache), filled during the search
    price = get_price("c7i.large")
    budget = args.budget_s or (420 if args.quick or args.small else 1500)
    search = search_engine(bundles, workload="chat", budget_s=budget, point_s=5.0 if args.quick else 8.0,
                           max_points=5, small=args.quick or args.small,
                           work_dir=work / "search", progress=log,
                           on_confirm=trials.on_confirmed_engine(work / "trials", price, 10 if args.quick else 24,
                                                                 extra, log))
    log(search.to_text())
    log("served quality (demo LM, bf16 checkpoint) ...")
    quality = measured_or_reason(lambda: served_quality_of_baseline(
        get_task("causal-lm"), work / "demo", 8 if args.small else 32, 8 if args.small else 16))
    log("predicted vs served goodput (in-process step times of each checkpoint, continuous-batching simulation) ...")
    prediction = predict_search(search, progress=log)
    log("the Triton Python full-sequence path it replaces, same model and SLO, near idle ...")
    # the checkpoint with the demo's text, cut to prompts of the workload's length
    demo_text = CausalLMTask(model_dir, {"test": get_task("causal-lm").documents["test"]})
    triton = measured_or_reason(lambda: triton_python_near_idle(
        demo_text, work / "triton", search.workload, search.slo_ttft_ms, search.slo_itl_ms,
        threads=len(split_cpus()[0]), attainment=search.attainment, progress=log,
        overwrite=True))   # a re-run replaces its own earlier bundle, as the engine bundles above do
    conf = search.confirmed
    result = {**serving_figures(search, prediction, triton, quality, extra),
              "peak_rss": rss, "mode": mode, "params_m": params_m, "cpu": cpu_isa(),
              "load_avg_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
              "wall_s": round(time.perf_counter() - t_start, 1)}
    saved = {**result, "trial_rows": extra, "confirm_rows": conf.rows if conf else []}
    (work / "result.json").write_text(json.dumps(saved, indent=2, default=str))
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    from workbench.util.signals import terminate_as_interrupt

    terminate_as_interrupt()   # a kill stops the servers this run started, as Ctrl-C does
    main()
