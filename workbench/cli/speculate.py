"""`workbench speculate`: speculative-decoding sweep (gamma x temperature x drafter) of a causal LM into a results table."""
from __future__ import annotations

from workbench.cli import add_loading_arguments, command, task_from_args


def _arguments(p) -> None:
    p.add_argument("--task", default="causal-lm", choices=["causal-lm"], help="built-in task kind")
    p.add_argument("--model", help="local HF causal-LM directory (default: the demo target)")
    p.add_argument("--data", help="JSONL/CSV documents (text) for --model")
    add_loading_arguments(p)
    p.add_argument("--draft", help="local HF draft LM with the same tokenizer (default: the demo draft)")
    p.add_argument("--study", default="speculative", help="results go to artifacts/<study>/")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads for every arm")
    p.add_argument("--gammas", type=int, nargs="+", default=[1, 2, 3, 4, 6, 8])
    p.add_argument("--temperatures", type=float, nargs="+", default=[0.0])
    p.add_argument("--drafters", nargs="+", default=["draft-model", "prompt-lookup"],
                   choices=["draft-model", "prompt-lookup"])
    p.add_argument("--prompts", type=int, default=8, help="held-out prompts")
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--no-kv-off", action="store_true", help="skip the (slow) plain decoding without KV cache")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"],
                   help="where the target and draft run (sequences and drafts are built there too)")


@command("speculate", "speculative decoding sweep: alpha, c, speedup measured and predicted, KV cache on/off",
         _arguments)
def cmd_speculate(args) -> int:
    from workbench.measure import environment_fingerprint
    from workbench.measure.generation import GenerationTrial, measure_generation
    from workbench.results import ResultsTable
    from workbench.runtime.torch_runner import resolve_device
    from workbench.tasks.hf_loading import load_hf_model

    trial = GenerationTrial(gammas=tuple(args.gammas), temperatures=tuple(args.temperatures),
                            drafters=tuple(args.drafters), n_prompts=args.prompts, prompt_tokens=args.prompt_tokens,
                            max_new_tokens=args.max_new_tokens, kv_cache_off=not args.no_kv_off)
    task = task_from_args(args)
    # the draft loads straight onto the run's device (never fp32-on-CPU-then-move)
    draft = (load_hf_model(args.draft, "AutoModelForCausalLM", trust_remote_code=args.trust_remote_code,
                           device=resolve_device(args.device), allow_pickle=args.allow_pickle)
             if args.draft else None)
    if draft is None and "draft-model" in trial.drafters and getattr(task, "draft_dir", None) is None:
        raise ValueError("--model has no draft: pass --draft DIR (same tokenizer) or --drafters prompt-lookup")
    table = ResultsTable.for_study(args.study, environment=environment_fingerprint())
    rows = measure_generation(task, trial, draft=draft, table=table, threads=args.threads, device=args.device)
    # tokens_per_s and speedup are decode-only (what the prediction models); e2e_* include the prompt's prefill
    print(ResultsTable(rows=rows).to_text(("variant", "temperature", "tokens_per_s", "e2e_tokens_per_s", "prefill_ms",
                                           "speedup", "e2e_speedup", "alpha", "c", "mean_proposed_per_round",
                                           "tokens_per_target_call", "predicted_speedup", "break_even_alpha",
                                           "identical", "failed")))
    for row in (r for r in rows if r.get("failed")):
        print(f"failed: {row['variant']}: {row.get('error')}")
    print(f"wrote {table.path}")
    return 0
