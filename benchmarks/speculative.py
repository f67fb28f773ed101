"""Speculative decoding side by side: every arm of ``workbench.arms.speculative`` on the demo pair, interleaved.

The arms (HF generate / assisted / prompt lookup, our eager loop and engine, the fast loop and speculative decoding on
the fast loop), what "the same work" means and how each figure is defined are in ``workbench/arms/speculative.py``.
This script parses, calls ``compare_speculative`` and prints; the last line is one JSON object.

    python benchmarks/speculative.py [--gamma auto|4] [--prompts 8] [--max-new-tokens 64] [--threads 2] [--repeats 2]

``--gamma auto`` (the default) first times the speculative fast loop at each of ``--gamma-candidates`` on the
validation split's prompts (``measure.speculative_gamma.choose_gamma``) and runs every arm at the fastest; the arms
are then measured on the test split's prompts, so the choice's own sample is never a headline.
"""
from __future__ import annotations

import argparse
import json
import os


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gamma", type=gamma_arg, default="auto", help="drafts per round, or auto (timed on validation)")
    p.add_argument("--gamma-candidates", type=gamma_list, default=(2, 3, 4, 5, 6), help="for --gamma auto, e.g. 3,4,5")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2, help="passes over the prompts (rounds = prompts x repeats)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto: where target and draft run")
    p.add_argument("--no-compile", action="store_true", help="fast-loop arms eager (static caches, no compile)")
    p.add_argument("--no-cpp-wrapper", action="store_true", help="compiled graphs call their kernels from Python")
    p.add_argument("--gemm-template", action="store_true",
                   help="autotune the frozen graphs' matmuls against inductor's C++ GEMM template (longer compile)")
    return p.parse_args(argv)


def gamma_arg(value: str):
    if value == "auto":
        return value
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"--gamma {value!r}: give a number of drafts per round >= 1, or auto")
    return int(value)


def gamma_list(value: str) -> tuple:
    parts = value.split(",")
    if not all(part.strip().isdigit() and int(part) >= 1 for part in parts):
        raise argparse.ArgumentTypeError(f"--gamma-candidates {value!r}: give drafts per round >= 1, comma-separated "
                                         "(e.g. 2,3,4,5,6)")
    return tuple(int(part) for part in parts)


def fmt(value, unit="x"):
    return "n/a" if value is None else f"{value:.2f}{unit}"


def report(result: dict) -> None:
    from workbench.arms.rows import describe_row

    print(f"arms ({result['prompts']} prompts x {result['repeats']} repeats, {result['max_new_tokens']} new tokens, "
          f"gamma={result['gamma']}; speedup = hf-generate-fp32 p50 / arm p50 per request; quality = greedy agreement)")
    for row in result["rows"]:
        print(describe_row(row, width=18))
    for name, f in result["figures"].items():
        if "alpha" not in f:
            print(f"{name}: {f['note']}")
            continue
        print(f"{name} over {f['target_loop']} (decode only): measured {fmt(f['decode_speedup'])} predicted "
              f"{fmt(f['predicted_speedup'])} (textbook, verify = 1 step: {fmt(f['predicted_textbook_speedup'])}); "
              f"alpha={fmt(f['alpha'], '')} c={fmt(f['c'], '')} verify={fmt(f['verify_cost_steps'], '')} steps "
              f"tokens/round={fmt(f['tokens_per_target_call'], '')}")
    sel = result["selection"]
    print(f"winner {sel['winner']} ({sel['pick']}): selection {fmt(sel['selection_speedup'])}, confirmed "
          f"{fmt(sel['confirmed_speedup'])} over {sel['baseline']}")
    print(f"fast-loop-spec over fast-loop-fp32: {fmt(result['fast_loop_spec_speedup'])} (confirmed "
          f"{fmt(result['fast_loop_spec_speedup_confirmed'])}); over the eager target {fmt(result['speedup_vs_target'])};"
          f" prediction error {fmt(result['prediction_error'], '')}; identical {result['identical']}")


def main(argv=None) -> dict:
    import torch

    from workbench.arms.speculative import compare_speculative
    from workbench.measure.environment import environment_fingerprint
    from workbench.runtime.cpu import isa_summary
    from workbench.runtime.torch_runner import resolve_device
    from workbench.tasks import get_task

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    task = get_task("causal-lm")
    target, draft = task.load_model().to(device), task.load_draft().to(device)
    prompts = [p.to(device) for p in task.prompts(args.prompts, args.prompt_tokens)]
    isa = isa_summary()
    load_before = os.getloadavg()[0]
    choice = None
    steps = dict(cpp_wrapper=not args.no_cpp_wrapper, gemm_template=args.gemm_template)   # fast loop and engine alike
    if args.gamma == "auto":
        from workbench.measure.speculative_gamma import choose_gamma

        calibration = [p.to(device) for p in task.prompts(args.prompts, args.prompt_tokens, split="validation")]
        choice = choose_gamma(target, draft, calibration, args.gamma_candidates, args.max_new_tokens,
                              compile=not args.no_compile, fast_loop_options=steps)
        print(f"gamma {choice.gamma} chosen on {len(calibration)} validation prompts, decode ms per token: "
              + ", ".join(f"{g}: {ms:.3f}" for g, ms in choice.decode_ms_per_token.items()))
    gamma = choice.gamma if choice else args.gamma
    result = compare_speculative(target, draft, prompts, gamma, args.max_new_tokens, args.repeats, args.threads,
                                 device, compile=not args.no_compile, isa=isa, fast_loop_options=steps)
    report(result)
    env = environment_fingerprint()
    result.update(gamma_choice=choice.as_dict() if choice else {"gamma": gamma, "note": "given (--gamma)"}, isa=isa,
                  load_average_1min={"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
                  threads=args.threads, device=device, fast_loop_options=steps,
                  cpu=env.get("cpu_model", env.get("cpu")),
                  torch=torch.__version__)
    print(f"load average (1 min): {result['load_average_1min']}  isa: {isa}")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    from workbench.util.signals import terminate_as_interrupt

    terminate_as_interrupt()   # a kill stops the servers this run started, as Ctrl-C does
    main()
