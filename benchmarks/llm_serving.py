"""LLM serving on a real engine: the workbench's checkpoints exported for vLLM (CPU build), served on loopback and
load-tested open-loop, on the 134M Llama shape (12 x 768, vocab 32000, random weights: speed does not depend on
them) and the demo LM (served perplexity).

1. Peak RSS of load bf16 checkpoint + weight-only int8 + engine export, in a fresh process (no fp32 copy).
2. Bundles: bf16, int8 (W8A8 on vLLM CPU), int4 (W4A16, group 128), each `export_engine`.
3. SLO: from the default engine's unloaded latency (TTFT p99 <= 5x its unloaded TTFT p50, ITL p99 <= 4x its
   unloaded ITL p50), the same for every arm.
4. Engine config search (one vLLM start per candidate, ~90 s each, so few): vLLM defaults on bf16, then int8 and
   int4 with the same arguments, then the best checkpoint with wider batching and an fp8 KV cache. Each candidate's
   goodput: Poisson rates doubling until the SLO is missed (the workbench's own client; AIPerf costs ~20 s per run).
5. The winner re-measured on a fresh server: each rate through AIPerf and the own client on the same schedule (the
   cross-check), then the shared-system-prompt workload vs distinct prompts at the same rate (prefix-cache TTFT).
6. Served quality: the demo LM exported bf16; vLLM's prompt log-probabilities vs the workbench's own NLL of the
   same checkpoint over the same token blocks.

Candidates are measured one after another (each needs its own engine process and start-up), not interleaved: the
1-min load average is printed at the start and end, and the default is re-run last for drift when time allows.

    python benchmarks/llm_serving.py            # 134M Llama
    python benchmarks/llm_serving.py --small    # tiny shapes (also WORKBENCH_SMALL=1)

Last printed line: one JSON object with the targets' figures.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MIN_REQUESTS = 8
SLO_TTFT_X, SLO_ITL_X = 5, 4       # SLO = these multiples of the default engine's unloaded TTFT p50 / ITL p50
log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", default=os.environ.get("WORKBENCH_SMALL") == "1")
    p.add_argument("--out", default=None, help="work folder (default artifacts/llm_serving)")
    p.add_argument("--prompt", type=int, default=128)
    p.add_argument("--new", type=int, default=16)
    p.add_argument("--budget-s", type=float, default=2400.0,
                   help="after this many seconds the remaining engine-argument candidates are skipped (listed)")
    p.add_argument("--point-s", type=float, default=8.0, help="seconds of arrivals per rate")
    p.add_argument("--max-points", type=int, default=5)
    p.add_argument("--rss-probe", nargs=2, metavar=("MODEL_DIR", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def build_model_dir(folder: Path, small: bool) -> Path:
    """The Llama shape of benchmarks/llm_decode.py in bf16 safetensors, with the demo tokenizer (its 4096 ids are a
    subset of the 32000-entry vocabulary)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from workbench.serving.engine.checkpoint import TOKENIZER_FILES
    from workbench.tasks.causal_lm import DEMO_TARGET_DIR

    if (folder / "config.json").is_file():
        return folder
    torch.manual_seed(0)
    shape = (dict(vocab_size=4096, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4)
             if small else dict(vocab_size=32000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                                num_attention_heads=12))
    model = LlamaForCausalLM(LlamaConfig(**shape, max_position_embeddings=1024)).eval().to(torch.bfloat16)
    # The demo tokenizer has 4096 tokens: ids above it decode to nothing, and AIPerf counts a stream without text as a
    # failed request. Zero LM-head rows keep greedy decoding on ids the tokenizer has (same shape, same speed).
    with torch.no_grad():
        model.lm_head.weight[4096:] = 0
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    for name in TOKENIZER_FILES:
        if (DEMO_TARGET_DIR / name).is_file() and name != "generation_config.json":
            shutil.copy(DEMO_TARGET_DIR / name, tmp / name)
    os.replace(tmp, folder)
    return folder


def _status_mb(field: str) -> float:
    """/proc/self/status VmRSS (now) or VmHWM (peak) in MB: unlike ru_maxrss, VmHWM starts afresh at exec (a child's
    ru_maxrss can carry its parent's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_probe(model_dir: str, out: str) -> None:
    """Child process: load the bf16 checkpoint in bf16, weight-only int8 in place, export; print peak RSS."""
    import torch
    from transformers import AutoModelForCausalLM

    from workbench.serving.engine.checkpoint import write_engine_checkpoint
    from workbench.steps.weight_only import apply_weight_only

    base_mb = _status_mb("VmRSS")
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    loaded_mb = _status_mb("VmHWM")
    apply_weight_only(model, 8)           # in place: each Linear replaced by its int8 form
    write_engine_checkpoint(model, Path(out), "int8", None, Path(model_dir))
    peak_mb = _status_mb("VmHWM")
    print(json.dumps({"rss_after_imports_mb": round(base_mb, 1), "rss_after_load_mb": round(loaded_mb, 1),
                      "peak_rss_mb": round(peak_mb, 1)}))


def peak_rss(model_dir: Path, work: Path) -> dict:
    ckpt_mb = sum(p.stat().st_size for p in model_dir.glob("*.safetensors")) / 2**20
    out = work / "rss-int8"
    shutil.rmtree(out, ignore_errors=True)
    proc = subprocess.run([sys.executable, __file__, "--rss-probe", str(model_dir), str(out)], capture_output=True,
                          text=True, timeout=900)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    fig = json.loads(proc.stdout.strip().splitlines()[-1])
    work_mb = fig["peak_rss_mb"] - fig["rss_after_imports_mb"]
    return {**fig, "checkpoint_mb": round(ckpt_mb, 1), "peak_over_imports_mb": round(work_mb, 1),
            "peak_over_imports_vs_checkpoint": round(work_mb / ckpt_mb, 3),
            "peak_vs_checkpoint": round(fig["peak_rss_mb"] / ckpt_mb, 3)}


class Workload:
    def __init__(self, ckpt: Path, n: int, prompt: int, new: int, shared: int = 0, seed: int = 0):
        from workbench.serving.engine.load import make_prompts

        self.prompts, self.lens = make_prompts(ckpt, n, prompt, shared, seed)
        self.new, self.shared = new, shared


def point(server, ckpt, work: Workload, rate, slo, client_cpus, out, use_aiperf, seed=0, price=None):
    from workbench.serving.engine.load import measure_point
    from workbench.serving.load.schedule import schedule

    n = len(work.prompts)
    offsets = schedule(rate, n, "poisson", seed=seed)
    row = measure_point(server, ckpt, work.prompts, work.lens, offsets, work.new, slo[0], slo[1], 0.99, client_cpus,
                        out, price=price, own_client=True, use_aiperf=use_aiperf)
    row["offered_rate_per_s"] = rate
    return row


def climb(server, ckpt, args, slo, client_cpus, out: Path, start_rate: float, use_aiperf=False, price=None):
    """Rates doubling from ``start_rate`` until a miss, then one step at 1.41x the last pass; goodput = the highest
    passing rate before the first miss (own-client SLO share when ``use_aiperf`` is off)."""
    from workbench.serving.load.sweep import goodput_of

    rows, rate, last_pass, k, down = [], start_rate, None, 0, 0
    while k < args.max_points:
        n = max(MIN_REQUESTS, min(80, round(rate * args.point_s)))
        work = Workload(ckpt, n, args.prompt, args.new, seed=100 + k)
        row = point(server, ckpt, work, rate, slo, client_cpus, out / f"p{k}", use_aiperf, seed=k, price=price)
        rows.append(row)
        log(f"    {rate:.3f}/s: TTFT p50 {row.get('ttft_ms_p50')} ms, ITL p50 {row.get('itl_ms_p50')} ms, within SLO "
            f"{row['slo_attainment']:.0%} ({row.get('client')})" + (f", own TTFT p50 {row.get('own_ttft_ms_p50')}"
                                                                     if use_aiperf else ""))
        k += 1
        if not row["meets_slo"] and last_pass is None and down < 2 and k < args.max_points:
            rate, down = round(rate / 2, 4), down + 1     # the start missed: halve (twice at most) to find a pass
            continue
        if not row["meets_slo"]:
            if last_pass is None or k >= args.max_points:
                break
            mid = round(last_pass * 1.41, 4)
            if mid >= rate:
                break
            rate = mid
            n = max(MIN_REQUESTS, min(80, round(rate * args.point_s)))
            work = Workload(ckpt, n, args.prompt, args.new, seed=100 + k)
            row = point(server, ckpt, work, rate, slo, client_cpus, out / f"p{k}", use_aiperf, seed=k, price=price)
            rows.append(row)
            log(f"    {rate:.3f}/s: TTFT p50 {row.get('ttft_ms_p50')} ms, within SLO {row['slo_attainment']:.0%}")
            break
        last_pass = rate
        rate = round(rate * 2, 4)
    ordered = sorted(rows, key=lambda r: r["offered_rate_per_s"])
    return ordered, goodput_of(ordered)


def unloaded(server, ckpt, args, client_cpus) -> dict:
    """One request at a time (4, after 2 warm-ups): TTFT and ITL p50 of the idle engine."""
    from workbench.serving.engine.openai_client import run_schedule

    work = Workload(ckpt, 6, args.prompt, args.new, seed=7)
    import numpy as np

    from workbench.serving.engine.load import pinned

    with pinned(client_cpus):
        run_schedule(server.url, work.prompts[:2], [0.0, 3.0], args.new)
        res = [run_schedule(server.url, [p], [0.0], args.new) for p in work.prompts[2:]]
    ttft = [r.per_request[0][0] for r in res if r.per_request]
    itl = [r.per_request[0][1] for r in res if r.per_request and r.per_request[0][1] is not None]
    e2e = [r.wall_s for r in res]
    return {"ttft_ms_p50": round(float(np.median(ttft)), 2), "itl_ms_p50": round(float(np.median(itl)), 3),
            "e2e_s_p50": round(float(np.median(e2e)), 3)}


def served_ppl(work: Path, small: bool) -> dict:
    """The demo LM exported bf16: vLLM's prompt log-probs vs the workbench's NLL of the same checkpoint (fp32
    compute from the bf16 weights) on the same test blocks."""
    import math
    import urllib.request

    import torch
    from transformers import AutoModelForCausalLM

    from workbench.serving.engine.engine_args import EngineArgs
    from workbench.serving.engine.export import export_engine
    from workbench.serving.engine.server import VllmServer, split_cpus
    from workbench.tasks import get_task
    from workbench.tasks.causal_lm import block_nll

    task = get_task("causal-lm")
    bundle = export_engine(task.baseline(), task, to=work / "bundle-demo-bf16", overwrite=True)
    blocks = task.token_blocks("test")[: 8 if small else 32]
    ckpt = bundle / "checkpoint"
    model = AutoModelForCausalLM.from_pretrained(str(ckpt), dtype=torch.float32).eval()
    with torch.inference_mode():
        own = torch.cat([block_nll(model(input_ids=c).logits, c)[0] for c in blocks.split(8)])
    del model
    own_ppl = math.exp(float(own.sum()) / (blocks.shape[0] * (blocks.shape[1] - 1)))
    nll = 0.0
    with VllmServer(ckpt, EngineArgs(max_model_len=max(256, blocks.shape[1] + 8)), work / "vllm-demo.log",
                    cpus=split_cpus()[0]) as server:
        for ids in blocks.tolist():
            body = {"model": "model", "prompt": ids, "max_tokens": 1, "temperature": 0, "prompt_logprobs": 1}
            req = urllib.request.Request(f"{server.url}/v1/completions", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=120) as r:
                lps = json.loads(r.read())["choices"][0]["prompt_logprobs"]
            nll -= sum(lp[str(t)]["logprob"] for t, lp in zip(ids[1:], lps[1:]))
    served = math.exp(nll / (blocks.shape[0] * (blocks.shape[1] - 1)))
    return {"own_ppl_bf16_checkpoint": round(own_ppl, 4), "served_ppl": round(served, 4),
            "served_ppl_diff_pct": round(100 * (served - own_ppl) / own_ppl, 3), "blocks": int(blocks.shape[0]),
            "block_len": int(blocks.shape[1])}


def main(argv=None) -> dict:
    from workbench.core import apply
    from workbench.measure.cost import get_price
    from workbench.serving.engine import envs
    from workbench.serving.engine.engine_args import EngineArgs
    from workbench.serving.engine.export import export_engine
    from workbench.serving.engine.server import VllmServer, split_cpus
    from workbench.runtime.cpu import cpu_isa
    from workbench.steps.weight_only import WeightOnlyConfig
    from workbench.tasks.causal_lm import CausalLMTask
    from workbench.util.files import artifacts_root

    args = parse(argv)
    if args.rss_probe:
        rss_probe(*args.rss_probe)
        return {}
    ok, why = envs.available()
    if not ok:
        raise SystemExit(why)
    load_start = os.getloadavg()[0]
    t_start = time.perf_counter()
    work = Path(args.out) if args.out else artifacts_root() / "llm_serving" / ("small" if args.small else "full")
    work.mkdir(parents=True, exist_ok=True)
    model_dir = build_model_dir(work / "llama-bf16", args.small)
    log(f"model {model_dir}; peak RSS probe (load bf16 + int8 + export) ...")
    rss = peak_rss(model_dir, work)
    log(f"  {rss}")
    task = CausalLMTask(model_dir, {"test": ["x"]}, name="llama134m" if not args.small else "llama-tiny")
    base = task.baseline()
    bundles = {"bf16": export_engine(base, task, to=work / "bundle-bf16", overwrite=True),
               "int8": export_engine(apply(base, WeightOnlyConfig.int8()), task, to=work / "bundle-int8",
                                     overwrite=True),
               "int4": export_engine(apply(base, WeightOnlyConfig.int4()), task, to=work / "bundle-int4",
                                     overwrite=True)}
    del base
    engine_cpus, client_cpus, cpu_note = split_cpus()
    price = get_price("c7i.large")
    default = EngineArgs()
    candidates = [("bf16", default), ("int8", default), ("int4", default)]
    results, configs, slo, idle = {}, {}, None, None

    def run(label, precision, eargs, use_aiperf=False, start=None):
        nonlocal slo, idle
        ckpt = bundles[precision] / "checkpoint"
        log(f"[{label}] {precision} {eargs.label()}: starting vLLM ...")
        with VllmServer(ckpt, eargs, work / f"vllm-{label}.log", cpus=engine_cpus) as server:
            log(f"  up in {server.startup_s} s")
            if slo is None:
                idle = unloaded(server, ckpt, args, client_cpus)
                slo = (round(SLO_TTFT_X * idle["ttft_ms_p50"], 1), round(SLO_ITL_X * idle["itl_ms_p50"], 2))
                log(f"  unloaded {idle}; SLO TTFT <= {slo[0]} ms, ITL <= {slo[1]} ms")
            r0 = start or max(0.1, round(0.5 / idle["e2e_s_p50"], 3))
            rows, good = climb(server, ckpt, args, slo, client_cpus, work / label, r0, use_aiperf, price)
            extra = {}
            if use_aiperf and good:
                try:
                    extra = prefix_trial(server, ckpt, args, slo, client_cpus, work / label, good)
                except Exception as exc:   # the trial's figure is then absent, the sweep's kept
                    log(f"  prefix trial failed: {type(exc).__name__}: {str(exc)[-300:]}")
                    extra = {"prefix_trial_error": str(exc)[-300:]}
        configs[label] = eargs
        results[label] = {"precision": precision, "engine_args": eargs.label(), "goodput_per_s": good,
                          "startup_s": server.startup_s, "rows": rows, **extra}
        log(f"  goodput {good}/s")
        return good

    for precision, eargs in candidates:
        run(f"{precision}-{eargs.label()}", precision, eargs)
    best_ckpt = max(("bf16", "int8", "int4"), key=lambda p: results[f"{p}-{default.label()}"]["goodput_per_s"] or 0)
    skipped = []
    for eargs in (EngineArgs(max_num_seqs=16, max_num_batched_tokens=1024),
                  EngineArgs(max_num_seqs=16, max_num_batched_tokens=1024, kv_cache_dtype="fp8")):
        if time.perf_counter() - t_start > 0.5 * args.budget_s:
            skipped.append(f"{best_ckpt}-{eargs.label()}")
            log(f"  skipped (budget): {skipped[-1]}")
            continue
        try:
            run(f"{best_ckpt}-{eargs.label()}", best_ckpt, eargs)
        except Exception as exc:   # an engine that cannot start with this config is a failed candidate, not a crash
            log(f"  failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
            results[f"{best_ckpt}-{eargs.label()}"] = {"precision": best_ckpt, "engine_args": eargs.label(),
                                                        "goodput_per_s": None, "failed": str(exc)[-400:]}
    search = {k: v["goodput_per_s"] for k, v in results.items()}
    winner = max(search, key=lambda k: search[k] or 0)
    w = results[winner]
    w_args = configs[winner]
    log(f"winner {winner} ({w['goodput_per_s']}/s); re-measuring with AIPerf + own client ...")
    remeasure = run("winner-remeasured", w["precision"], w_args, use_aiperf=True,
                    start=max(0.1, round((w["goodput_per_s"] or 0.4) / 4, 3)))
    rem = results["winner-remeasured"]
    diffs = [r["aiperf_vs_own_ttft_p50_diff_pct"] for r in rem["rows"] if r.get("aiperf_vs_own_ttft_p50_diff_pct")
             is not None]
    own_good = _own_goodput(rem["rows"])
    log("served perplexity (demo LM, bf16 checkpoint) ...")
    try:
        ppl = served_ppl(work, args.small)
    except Exception as exc:
        ppl = {"error": f"{type(exc).__name__}: {str(exc)[-300:]}"}
    default_key = f"bf16-{default.label()}"
    result = {
        "goodput_best_rps": remeasure,
        "goodput_best_own_client_rps": own_good,
        "goodput_best_search_rps": w["goodput_per_s"],
        "goodput_vllm_default_bf16_rps": results[default_key]["goodput_per_s"],
        "goodput_ratio_best_vs_default": _ratio(own_good, results[default_key]["goodput_per_s"]),
        "engine_vs_triton_python_goodput": None,
        "prefix_cache_ttft_ratio_under_load": rem.get("prefix_cache_ttft_ratio"),
        "aiperf_vs_own_ttft_p50_diff_pct": max(diffs, key=abs) if diffs else None,
        "aiperf_vs_own_ttft_p50_diff_pct_all": diffs,
        "predicted_vs_served_goodput_error_pct": None,
        "served_ppl_diff_pct": ppl.get("served_ppl_diff_pct"),
        "winner": winner, "search": search, "search_skipped_for_time": skipped, "slo": {"ttft_ms": slo[0], "itl_ms": slo[1], "from_unloaded": idle},
        "peak_rss": rss, "served_ppl": ppl,
        "aiperf_cpu_share": [r.get("aiperf_cpu_share") for r in rem["rows"]],
        "own_client_cpu_share": [r.get("own_client_cpu_share") for r in rem["rows"]],
        "winner_rows": [{k: r.get(k) for k in ("offered_rate_per_s", "ttft_ms_p50", "ttft_ms_p99", "itl_ms_p50",
                                                "itl_ms_p99", "tpot_ms_p50", "e2e_ms_p50", "ttft_samples",
                                                "output_tokens_per_s", "slo_attainment", "meets_slo",
                                                "own_ttft_ms_p50", "usd_per_1m_input_tokens",
                                                "usd_per_1m_cached_input_tokens", "usd_per_1m_output_tokens")}
                        for r in rem["rows"]],
        "prefix_trial": {k: rem.get(k) for k in ("prefix_rate_per_s", "prefix_ttft_ms_p50_shared",
                                                   "prefix_ttft_ms_p50_distinct", "prefix_cache_hit_rate")},
        "shape": {"small": args.small, "prompt": args.prompt, "new_tokens": args.new,
                  "params_m": round(sum(p.numel() for p in task.load_model().parameters()) / 1e6, 1)},
        "cpus": {"engine": engine_cpus, "client": client_cpus, "note": cpu_note},
        "cpu": cpu_isa(), "load_avg_1m": {"start": round(load_start, 2), "end": round(os.getloadavg()[0], 2)},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "not_measured": {"engine_vs_triton_python_goodput": "Triton Python full-sequence LM path not run here",
                         "predicted_vs_served_goodput_error_pct": "no in-process predictor of served goodput yet"},
    }
    (work / "result.json").write_text(json.dumps({**result, "details": results}, indent=2, default=str))
    print(json.dumps(result, default=str))
    return result


def prefix_trial(server, ckpt, args, slo, client_cpus, out, rate) -> dict:
    """Same server, same rate (half the goodput), same prompt length: a shared system prompt (7/8 of the prompt)
    vs distinct prompts; TTFT p50 ratio with the prefix cache on (the winner's setting)."""
    n = max(12, min(60, round(rate / 2 * args.point_s)))
    plen = 2 * args.prompt
    shared = Workload(ckpt, n, plen, args.new, shared=plen * 7 // 8, seed=300)
    distinct = Workload(ckpt, n, plen, args.new, seed=301)
    rows = {}
    for name, wl in (("distinct", distinct), ("shared", shared), ("distinct2", distinct)):
        rows[name] = point(server, ckpt, wl, rate / 2, slo, client_cpus, out / f"prefix-{name}", False, seed=9)
    d = (rows["distinct"]["ttft_ms_p50"] + rows["distinct2"]["ttft_ms_p50"]) / 2   # before and after: drift
    s = rows["shared"]["ttft_ms_p50"]
    log(f"  prefix trial at {rate / 2}/s: TTFT p50 distinct {d:.1f} ms, shared {s:.1f} ms "
        f"(hit rate {rows['shared'].get('prefix_cache_hit_rate')})")
    return {"prefix_rate_per_s": rate / 2, "prefix_ttft_ms_p50_distinct": round(d, 2),
            "prefix_ttft_ms_p50_shared": s, "prefix_cache_hit_rate": rows["shared"].get("prefix_cache_hit_rate"),
            "prefix_cache_ttft_ratio": round(s / d, 3) if d else None}


def _own_goodput(rows):
    good = None
    for r in sorted(rows, key=lambda r: r["offered_rate_per_s"]):
        if r.get("own_errors") or (r.get("own_within_slo") or 0) < 0.99:
            break
        good = r["offered_rate_per_s"]
    return good


def _ratio(a, b):
    return round(a / b, 3) if a and b else None


if __name__ == "__main__":
    main()
