"""LLM decode benchmark: the LLM decode arms of ``workbench.arms.llm`` (HF generate fp32 and HF's own static-cache +
torch.compile path, the fast loop fp32 / bf16 / int8 / int4 weight-only, ONNX Runtime fp32 / MatMulNBits, llama.cpp
f32 / bf16 when llama-cpp-python is installed) on a Llama-shaped random-weight decoder, batch 1 (``--batch``),
measured by the one arm runner: equal warm-up, seeded order per round, the pick by the one eligibility rule on
quality measured on the timed weights through the timed path (top-1 agreement with fp32, and KL, teacher forced),
then a fresh confirmation run of the winner against HF generate.

Every arm generates exactly ``--new`` greedy tokens after the same prompt (no EOS stop, no min-length processor).
A call is one whole request; TTFT / TPOT / ITL come from that call's emission times. Bandwidth utilisation =
bytes a decode step reads (weights, and the KV cache as that arm holds it: a static cache's full length) x steps/s
(1 / TPOT) / this CPU's read bandwidth at the run's threads, timed as a reference call in the arms' own rounds
(``read_gb_per_s``; ``read_gb_per_s_best``: best of 10 reads apart from the run). Above 1 is flagged: a bug.

    python benchmarks/llm_decode.py            # Llama 12 x 768, vocab 32000; prompt 128, 128 new tokens
    python benchmarks/llm_decode.py --small    # tiny shapes (also WORKBENCH_SMALL=1), for CI
    python benchmarks/llm_decode.py --isolate --arms fast-loop-int4-wo,ort-int4-matmulnbits   # + HF, own processes
    python benchmarks/llm_decode.py --vocab 4096 --batch 8   # the issue's probe shape (12 x 768, vocab 4096), batch 8

Last printed line: one JSON object (``best_variant``, ``best_speedup_vs_hf`` = the confirmed ratio,
``selection_speedup_vs_hf``, ``fast_loop_speedup_vs_hf``, ``hf_static_compile_speedup_vs_hf``,
``best_ppl_increase_pct`` (the winner's technique on the demo LM), ``best_bandwidth_utilisation``,
``prefix_cache_ttft_ratio``, ``isa``, ``loadavg_1min``, the rows). With ``--skip-ppl`` the pick is "unchecked".
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def parse(argv):
    from workbench.arms.llm import BENCHMARK_ARMS
    from workbench.util.settings import small_mode

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", default=small_mode(), help="tiny shapes (WORKBENCH_SMALL=1 too)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=None, help="timed requests per arm (default 3; 2 with --small)")
    p.add_argument("--no-compile", action="store_true", help="fast loop eager (static cache), HF compile arm left out")
    p.add_argument("--skip-ppl", action="store_true", help="no quality: the pick is flagged unchecked")
    p.add_argument("--tolerance", type=float, default=2.0, help="largest top-1 agreement drop (points) vs fp32")
    p.add_argument("--arms", default="", help=f"comma-separated subset of: {', '.join(BENCHMARK_ARMS)} (+ HF)")
    p.add_argument("--isolate", action="store_true", help="each arm in its own process (it sends its requests back)")
    p.add_argument("--batch", type=int, default=1, help="prompts per request (one timing sample carries them all)")
    p.add_argument("--vocab", type=int, default=None, help="vocabulary size (default 32000; the issue's probe: 4096)")
    p.add_argument("--out", default=None, help="folder for the ONNX files (default $WORKBENCH_ARTIFACTS/onnx)")
    args = p.parse_args(argv)
    args.prompt, args.new = (16, 8) if args.small else (128, 128)
    args.rounds = args.rounds or (2 if args.small else 3)
    return args


def main(argv=None) -> dict:
    import torch

    from workbench.arms.llm import (decode_context, demo_lm_perplexity, llm_arms, random_llama, read_bandwidth_of_run,
                                    read_reference, request_rows)
    from workbench.arms.runner import compare
    from workbench.runtime.cpu import isa_summary
    from workbench.measure.prefix_cache import PrefixTrial, prefix_cache_trial

    args = parse(argv)
    torch.set_num_threads(args.threads)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    load_start, isa = os.getloadavg()[0], isa_summary()
    model = random_llama(args.small, args.vocab)
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    log(f"Llama-shaped random-weight decoder, {n_params:.1f}M parameters; building arms ...")
    compiled = not args.no_compile
    # full-size steps only (tiny ones are all compile time): C++ calls, matmuls autotuned with the C++ GEMM template
    steps = dict(cpp_wrapper=True, gemm_template=True) if compiled and not args.small else {}
    ctx = decode_context(model, args.prompt, args.new, (args.batch,), compiled, threads=args.threads, out=args.out,
                         log=log, fast_loop_options=steps)
    names = [n for n in args.arms.split(",") if n] or None
    recipe = ("workbench.arms.llm", "recipe", dict(small=args.small, prompt=args.prompt, new=args.new, names=names,
                                                   compile=compiled, threads=args.threads, out=args.out,
                                                   batches=(args.batch,), vocab=args.vocab,
                                                   fast_loop_options=steps))
    references = read_reference(ctx)   # the device's read bandwidth, timed in the same rounds as the arms
    res = compare(llm_arms(names, compiled, batch=args.batch), ctx, args.tolerance,
                  measure_quality=not args.skip_ppl, rounds=args.rounds, calls_per_turn=1, warmup=1,
                  isolate=args.isolate, recipe=recipe if args.isolate else None, isa=isa, references=references)
    read = read_bandwidth_of_run(res.selection, references, ctx)
    peak = read["read_gb_per_s"]
    request_rows(res.rows, ctx.cache.get("results", {}), res.selection.warmup, args.prompt, args.new, peak, args.batch)
    best = res.pick.row or {}
    ppl = demo_lm_perplexity(res.pick.arm, 16 if args.small else None, args.threads, log) if (
        res.pick.arm and not args.skip_ppl) else {}
    trial = prefix_cache_trial(model, PrefixTrial(prefix_len=64 if args.small else 512,
                                                  n_requests=4 if args.small else 6))
    cols = ("status", "tokens_per_s", "speedup", "speedup_min", "ttft_ms_p50", "tpot_ms_p50",
            "bandwidth_utilisation", "quality", "drop_ci_pts", "eligible")
    print(f"\ndecode, prompt {args.prompt}, {args.new} new tokens, batch {args.batch}, {args.threads} threads, "
          f"{n_params:.0f}M-param Llama shape; read bandwidth {peak:.1f} GB/s ({read['read_measured']}; best of "
          f"10 apart: {read['read_gb_per_s_best']:.1f}); quality = top-1 agreement (%) with fp32 on the timed "
          f"weights; tolerance {args.tolerance} points")
    print(f"{'arm':24s}" + "".join(f"{c:>16s}" for c in cols))
    for row in res.rows:
        print(f"{row['arm']:24s}" + "".join(f"{str(row.get(c, '-'))[:15]:>16s}" for c in cols))
    for row in res.rows:
        if row["status"] != "measured" or row.get("bandwidth_flag"):
            print(f"  {row['arm']}: {row.get('bandwidth_flag') or row['reason']}")
    print(f"\npick: {res.pick.arm} ({res.pick.reason}); selection {res.selection_speedup}x, "
          f"confirmed {res.confirmed_speedup}x vs HF generate fp32 (fresh run of the two)")
    speed = {r["arm"]: r.get("speedup") for r in res.rows}
    result = {"best_variant": res.pick.arm, "best_speedup_vs_hf": res.confirmed_speedup,
              "selection_speedup_vs_hf": res.selection_speedup,
              "pick": "checked" if res.pick.checked else "unchecked", "pick_reason": res.pick.reason,
              "fast_loop_speedup_vs_hf": speed.get("fast-loop-fp32"),
              "hf_static_compile_speedup_vs_hf": speed.get("hf-static-compile-fp32"),
              "best_ppl_increase_pct": ppl.get("ppl_increase_pct"), "best_ppl": ppl or None,
              "best_quality_drop_ci_pts": best.get("drop_ci_pts"),
              "best_bandwidth_utilisation": best.get("bandwidth_utilisation"),
              "prefix_cache_ttft_ratio": trial["ttft_ratio"], "tolerance_pts": args.tolerance,
              "shape": {"params_m": round(n_params, 1), "prompt": args.prompt, "new_tokens": args.new,
                        "batch": args.batch, "vocab": model.config.vocab_size},
              "threads": args.threads, **read, "isa": isa,
              "arms_ran_in": "one process each" if args.isolate else "one process", "arms": res.rows,
              "loadavg_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)], "logical_cpus": os.cpu_count()}
    print(f"1-min load average at start/end: {result['loadavg_1min']} on {os.cpu_count()} logical CPUs")
    print(json.dumps(result, default=str))
    return result


if __name__ == "__main__":
    from workbench.util.signals import terminate_as_interrupt

    terminate_as_interrupt()   # a kill stops the servers this run started, as Ctrl-C does
    main()
