"""Speculative decoding side by side, one process, same prompts and thread count for every arm.

Arms (greedy, batch 1, all stopping at the tokenizer's EOS; HF prompt lookup cannot run without one):
  hf-generate          transformers ``generate`` on the target alone (KV cache)
  own-loop             our plain loop on the target alone (KV cache): the fair, low-overhead baseline
  hf-assisted          transformers assisted generation with the same draft (its defaults)
  hf-assisted-gamma    the same with ``num_assistant_tokens=gamma``, constant schedule, no confidence cut-off
  hf-prompt-lookup     transformers ``prompt_lookup_num_tokens=gamma``
  spec-draft           this engine, draft model, gamma
  spec-lookup          this engine, prompt lookup, gamma
Arms are interleaved prompt by prompt and repeated, so a shared machine's load drift hits all of them alike.
``speedup_vs_target`` divides by the FASTER of the two target-alone arms, ``speedup_vs_hf_assisted`` by the faster
HF assisted arm. Last line: one JSON object.

    python benchmarks/speculative.py [--gamma 4] [--prompts 8] [--max-new-tokens 64] [--threads 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import copy
import json

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gamma", type=int, default=4)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    return p.parse_args(argv)


def hf_arms(target, draft, gamma, n_new, eos):
    """transformers arms: (name -> fn(ids) -> output ids). Assistants are copies: HF edits their generation config."""
    base = dict(max_new_tokens=n_new, do_sample=False, eos_token_id=eos, pad_token_id=eos)
    tuned = copy.deepcopy(draft)
    tuned.generation_config.num_assistant_tokens = gamma
    tuned.generation_config.num_assistant_tokens_schedule = "constant"
    tuned.generation_config.assistant_confidence_threshold = 0.0
    default = copy.deepcopy(draft)

    def gen(**extra):
        # an explicit all-ones mask: HF would otherwise infer padding wherever token id == pad_token_id
        return lambda ids: target.generate(ids, attention_mask=torch.ones_like(ids), **base, **extra)

    return {"hf-generate": gen(), "hf-assisted": gen(assistant_model=default),
            "hf-assisted-gamma": gen(assistant_model=tuned), "hf-prompt-lookup": gen(prompt_lookup_num_tokens=gamma)}


def timed_generation(arms: dict, prompts: list, repeats: int) -> tuple[dict, dict]:
    """Tokens/s of each arm (``fn(ids) -> ids + new tokens``) over ``repeats`` passes of ``prompts``, interleaved
    prompt by prompt (round k: every arm on the same prompt); also each arm's outputs of the first pass."""
    from workbench.measure.interleaved import cycling, time_interleaved
    from workbench.measure.timing import per_second

    tokens, outputs = dict.fromkeys(arms, 0), {a: [] for a in arms}

    def record(name, result):   # runs between calls, outside the timer
        ids, out = result
        tokens[name] += out.shape[1] - ids.shape[1]
        if len(outputs[name]) < len(prompts):
            outputs[name].append(out)

    calls = {name: cycling(lambda ids, fn=fn: (ids, fn(ids)), prompts) for name, fn in arms.items()}
    with torch.inference_mode():
        timing = time_interleaved(calls, rounds=repeats * len(prompts), calls_per_turn=1, warmup=0, record=record)
    return {a: per_second(tokens[a], timing[a].total_ms) for a in arms}, outputs


def main(argv=None) -> dict:
    from workbench.measure.environment import environment_fingerprint
    from workbench.measure.generation import predicted_speedup
    from workbench.decoding.drafters import ModelDrafter, PromptLookupDrafter
    from workbench.decoding.speculative import autoregressive_generate, speculative_generate
    from workbench.tasks import get_task

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    task = get_task("causal-lm")
    target, draft = task.load_model(), task.load_draft()
    prompts = task.prompts(args.prompts, args.prompt_tokens)
    n_new, gamma, eos = args.max_new_tokens, args.gamma, task.tokenizer.eos_token_id
    drafter, lookup = ModelDrafter(draft, target), PromptLookupDrafter()
    stats: dict = {}

    def ours(name, fn):
        def run(ids):
            out, s = fn(ids)
            stats[name] = s if name not in stats else stats[name].merge(s)
            return out
        return run

    arms = {**hf_arms(target, draft, gamma, n_new, eos),
            "own-loop": ours("own-loop", lambda ids: autoregressive_generate(target, ids, n_new, eos_token_id=eos)),
            "spec-draft": ours("spec-draft", lambda ids: speculative_generate(target, drafter, ids, gamma, 0.0, n_new, eos)),
            "spec-lookup": ours("spec-lookup", lambda ids: speculative_generate(target, lookup, ids, gamma, 0.0, n_new, eos))}
    with torch.inference_mode():
        for fn in arms.values():   # warm-up (first-call allocations, HF generation-config set-up)
            fn(prompts[0])
    stats.clear()
    tps, outputs = timed_generation(arms, prompts, args.repeats)
    reference = outputs["own-loop"]
    same = {a: all(torch.equal(x, y) for x, y in zip(outputs[a], reference)) for a in arms}

    s, base = stats["spec-draft"], stats["own-loop"]
    c = (s.draft_seconds / s.draft_calls) / (base.target_seconds / base.target_calls)
    target_tps = max(tps["hf-generate"], tps["own-loop"])
    hf_assisted_tps = max(tps["hf-assisted"], tps["hf-assisted-gamma"])
    speedup = tps["spec-draft"] / target_tps
    predicted = predicted_speedup(s.alpha, gamma, c)
    verify = (s.target_seconds / s.target_calls) / (base.target_seconds / base.target_calls)
    predicted_v = predicted_speedup(s.alpha, gamma, c, verify)
    own_speedup = tps["spec-draft"] / tps["own-loop"]   # the prediction's own baseline: our loop, same forward
    print(f"{'arm':<18} {'tokens/s':>9} {'vs target':>9}  identical   ({args.threads}-thread CPU, {len(prompts)} prompts x "
          f"{args.repeats} repeats, {n_new} new tokens, gamma={gamma})")
    for a in arms:
        print(f"{a:<18} {tps[a]:9.1f} {tps[a] / target_tps:9.2f}  {same[a]}")
    lookup_s = stats["spec-lookup"]
    print(f"draft model: alpha={s.alpha:.3f} c={c:.3f} tokens/target call={s.new_tokens / s.target_calls:.2f} "
          f"predicted={predicted:.2f}x measured={speedup:.2f}x (measured/predicted={speedup / predicted:.2f})")
    print(f"verify call = {verify:.2f} target steps; prediction with that cost {predicted_v:.2f}x "
          f"vs measured over our own loop {own_speedup:.2f}x")
    print(f"prompt lookup: alpha={lookup_s.alpha:.3f} tokens/target call={lookup_s.new_tokens / lookup_s.target_calls:.2f}")
    env = environment_fingerprint()
    result = {"identical": same["spec-draft"] and same["spec-lookup"] and same["hf-generate"],
              "speedup_vs_target": round(speedup, 3),
              "speedup_vs_hf_assisted": round(tps["spec-draft"] / hf_assisted_tps, 3),
              "predicted_speedup": round(predicted, 3), "measured_over_predicted": round(speedup / predicted, 3),
              "alpha": round(s.alpha, 4), "c": round(c, 4), "gamma": gamma, "verify_cost_steps": round(verify, 3),
              "predicted_with_verify_cost": round(predicted_v, 3), "speedup_vs_own_loop": round(own_speedup, 3),
              "tokens_per_target_call": round(s.new_tokens / s.target_calls, 3),
              "tokens_per_s": {a: round(v, 1) for a, v in tps.items()},
              "lookup_speedup_vs_target": round(tps["spec-lookup"] / target_tps, 3),
              "lookup_alpha": round(lookup_s.alpha, 4),
              "prompts": len(prompts), "repeats": args.repeats, "max_new_tokens": n_new, "threads": args.threads,
              "cpu": env.get("cpu_model", env.get("cpu")), "torch": torch.__version__}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
