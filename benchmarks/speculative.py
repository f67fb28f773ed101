"""Speculative decoding side by side, one process, same prompts and thread count for every arm.

Arms (greedy, batch 1):
  hf-generate          transformers ``generate`` on the target alone (KV cache)
  own-loop             our plain loop on the target alone (KV cache): the fair, low-overhead baseline
  hf-assisted          transformers assisted generation with the same draft (its defaults: up to 20 drafts per
                       round, adaptive schedule)
  hf-assisted-gamma    the same with ``num_assistant_tokens=gamma``, constant schedule, no confidence cut-off
  hf-prompt-lookup     transformers ``prompt_lookup_num_tokens=gamma``
  spec-draft-hf        this engine, draft model through its plain HF forward (the forward HF assisted runs), gamma
  spec-draft-lean      this engine, draft model through the lean GPT-2 forward (``decoding/lean_gpt2.py``), gamma
  spec-lookup          this engine, prompt lookup, gamma

Same decode work in every arm: all stop at the tokenizer's EOS (HF prompt lookup cannot run without one) and keep it,
the same ``max_new_tokens``, pad id = EOS for HF with an explicit all-ones attention mask (batch 1: nothing is padded;
our loops have no padding at all), and HF arms get a clean ``GenerationConfig`` (greedy, nothing else from the model's
defaults). What does differ is stated per arm in the JSON's ``decode_notes``: the loop overhead class (HF's
``generate`` machinery vs our lean loops), and drafters cutting proposals at EOS (HF) or not (ours; tokens after an
EOS are never kept). ``new_tokens`` per arm and ``same_new_tokens`` check the work really was the same.

Speedups here are END-TO-END tokens/s (prefill included: HF arms cannot be split); our arms' prefill and decode-only
figures are reported beside (``prefill_ms``, ``decode_tokens_per_s``). The headline ``speedup_vs_target`` is the
engine with the plain HF draft forward (``headline_draft_forward``: "hf") over the FASTER of the two target-alone
arms, so it measures the engine, not a hand-written forward; ``lean_speedup_vs_target`` is the lean forward's.
``speedup_vs_hf_assisted`` divides the same headline arm by the faster HF assisted arm (same draft forward). alpha,
c, the prediction and ``measured_over_predicted`` (decode-only speedup over our own loop / prediction) are the
headline arm's. Arms are interleaved prompt by prompt and repeated, so a shared machine's load drift hits all of them
alike. Last line: one JSON object.

    python benchmarks/speculative.py [--gamma 4] [--prompts 8] [--max-new-tokens 64] [--threads 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import copy
import json
import math

import torch

HEADLINE_ARM = "spec-draft-hf"
HEADLINE_DRAFT_FORWARD = "hf"
OWN_ARMS = ("own-loop", "spec-draft-hf", "spec-draft-lean", "spec-lookup")

_HF_LOOP = "HF generate loop (logits processors, stopping criteria, generation-config and cache objects per step)"
_OWN_LOOP = "own lean loop"
DECODE_NOTES = {
    "hf-generate": f"{_HF_LOOP}; target alone",
    "own-loop": f"{_OWN_LOOP}; target alone",
    "hf-assisted": f"{_HF_LOOP}; HF draft forward; HF's default draft length and schedule (not gamma); "
                   "drafts cut at EOS",
    "hf-assisted-gamma": f"{_HF_LOOP}; HF draft forward; gamma drafts per round, constant; drafts cut at EOS",
    "hf-prompt-lookup": f"{_HF_LOOP}; prompt lookup up to gamma tokens; candidates cut at EOS",
    "spec-draft-hf": f"{_OWN_LOOP}; HF draft forward; gamma drafts per round; drafts not cut at EOS",
    "spec-draft-lean": f"{_OWN_LOOP}; lean GPT-2 draft forward; gamma drafts per round; drafts not cut at EOS",
    "spec-lookup": f"{_OWN_LOOP}; prompt lookup up to gamma tokens; candidates not cut at EOS",
}
SAME_WORK = "greedy; stops at EOS (kept); same max_new_tokens; batch 1, no padding (HF pad id = EOS, all-ones mask)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gamma", type=int, default=4)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto: where target and draft run")
    return p.parse_args(argv)


def hf_arms(target, draft, gamma, n_new, eos):
    """transformers arms: (name -> fn(ids) -> output ids). Assistants are copies: HF edits their generation config.

    Each call gets a clean ``GenerationConfig`` (greedy, EOS, pad = EOS, ``max_new_tokens``), so nothing from the
    model's own generation defaults (penalties, min length, ...) changes the work.
    """
    from transformers import GenerationConfig

    tuned = copy.deepcopy(draft)
    tuned.generation_config.num_assistant_tokens = gamma
    tuned.generation_config.num_assistant_tokens_schedule = "constant"
    tuned.generation_config.assistant_confidence_threshold = 0.0
    default = copy.deepcopy(draft)

    def gen(**extra):
        def run(ids):
            config = GenerationConfig(max_new_tokens=n_new, do_sample=False, eos_token_id=eos, pad_token_id=eos)
            # an explicit all-ones mask: HF would otherwise infer padding wherever token id == pad_token_id
            return target.generate(ids, attention_mask=torch.ones_like(ids), generation_config=config, **extra)
        return run

    return {"hf-generate": gen(), "hf-assisted": gen(assistant_model=default),
            "hf-assisted-gamma": gen(assistant_model=tuned), "hf-prompt-lookup": gen(prompt_lookup_num_tokens=gamma)}


def timed_generation(arms: dict, prompts: list, repeats: int, device: str = "cpu") -> tuple[dict, dict, dict]:
    """End-to-end tokens/s of each arm (``fn(ids) -> ids + new tokens``) over ``repeats`` passes of ``prompts``,
    interleaved prompt by prompt (round k: every arm on the same prompt); each arm's outputs of the first pass, and
    the new tokens each arm made over all passes."""
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
        timing = time_interleaved(calls, rounds=repeats * len(prompts), calls_per_turn=1, warmup=0, record=record,
                                  device=device)
    return {a: per_second(tokens[a], timing[a].total_ms) for a in arms}, outputs, tokens


def run_benchmark(target, draft, prompts: list, eos: int, gamma: int = 4, n_new: int = 64, repeats: int = 2,
                  device: str = "cpu") -> dict:
    """Every arm on ``prompts`` (each [1, T] on the models' device), interleaved; the result dict ``main`` prints."""
    from workbench.decoding.drafters import ModelDrafter, PromptLookupDrafter
    from workbench.decoding.speculative import autoregressive_generate, speculative_generate
    from workbench.measure.speculative_model import predicted_speedup

    drafters = {"spec-draft-hf": ModelDrafter(draft, target, lean=False),
                "spec-draft-lean": ModelDrafter(draft, target, lean=True)}
    forwards = {name: d.forward_kind for name, d in drafters.items()}   # lean falls back to "hf" off GPT-2
    lookup = PromptLookupDrafter()
    stats: dict = {}

    def ours(name, fn):
        def run(ids):
            out, s = fn(ids)
            stats[name] = s if name not in stats else stats[name].merge(s)
            return out
        return run

    def spec(drafter):
        return lambda ids: speculative_generate(target, drafter, ids, gamma, 0.0, n_new, eos)

    arms = {**hf_arms(target, draft, gamma, n_new, eos),
            "own-loop": ours("own-loop", lambda ids: autoregressive_generate(target, ids, n_new, eos_token_id=eos)),
            **{name: ours(name, spec(d)) for name, d in drafters.items()},
            "spec-lookup": ours("spec-lookup", spec(lookup))}
    with torch.inference_mode():
        for fn in arms.values():   # warm-up (first-call allocations, HF generation-config set-up)
            fn(prompts[0])
    stats.clear()
    tps, outputs, new_tokens = timed_generation(arms, prompts, repeats, device)
    reference = outputs["own-loop"]
    same = {a: all(torch.equal(x, y) for x, y in zip(outputs[a], reference)) for a in arms}

    base = stats["own-loop"]
    step_s = base.target_seconds / base.target_calls                 # target decode step, prefill excluded

    def figures(name):
        s = stats[name]
        c = (s.draft_seconds / max(s.draft_calls, 1)) / step_s         # draft decode call / target decode step
        rounds = len(s.proposal_lengths)
        calls = s.draft_calls / rounds
        predicted = predicted_speedup(s.alpha, gamma, c, 1.0, s.proposal_lengths, calls)
        verify = (s.target_seconds / s.target_calls) / step_s
        decode_speedup = s.tokens_per_s / base.tokens_per_s          # decode-only, over our own loop
        return {"alpha": s.alpha, "c": c, "predicted": predicted, "verify": verify, "decode_speedup": decode_speedup,
                "predicted_v": predicted_speedup(s.alpha, gamma, c, verify, s.proposal_lengths, calls),
                "tokens_per_call": s.new_tokens / s.target_calls, "mean_proposed": s.proposed / rounds}

    fig = {name: figures(name) for name in ("spec-draft-hf", "spec-draft-lean", "spec-lookup")}
    target_tps = max(tps["hf-generate"], tps["own-loop"])
    hf_assisted_tps = max(tps["hf-assisted"], tps["hf-assisted-gamma"])
    head = fig[HEADLINE_ARM]
    speedup = tps[HEADLINE_ARM] / target_tps
    per_prompt = {a: round(stats[a].prefill_seconds * 1e3 / stats[a].generations, 3) for a in OWN_ARMS}
    counts = set(new_tokens.values())
    notes = {a: DECODE_NOTES[a] if len(counts) == 1 else f"{DECODE_NOTES[a]}; made {new_tokens[a]} new tokens"
             for a in arms}

    def r3(v):   # NaN (e.g. alpha with nothing tested) is not JSON: None
        return None if math.isnan(v) else round(v, 3)

    return {"identical": all(same[a] for a in ("hf-generate", "spec-draft-hf", "spec-draft-lean", "spec-lookup")),
            "speedup_vs_target": round(speedup, 3),
            "speedup_vs_hf_assisted": round(tps[HEADLINE_ARM] / hf_assisted_tps, 3),
            "predicted_speedup": r3(head["predicted"]),
            "measured_over_predicted": r3(head["decode_speedup"] / head["predicted"]),
            "alpha": r3(head["alpha"]), "c": round(head["c"], 4), "gamma": gamma,
            "headline_arm": HEADLINE_ARM, "headline_draft_forward": forwards[HEADLINE_ARM], "draft_forwards": forwards,
            "speedup_basis": "end-to-end tokens/s (prefill + decode), over the faster target-alone arm",
            "lean_speedup_vs_target": round(tps["spec-draft-lean"] / target_tps, 3),
            "lean_speedup_vs_hf_assisted": round(tps["spec-draft-lean"] / hf_assisted_tps, 3),
            "lean_c": round(fig["spec-draft-lean"]["c"], 4), "lean_alpha": r3(fig["spec-draft-lean"]["alpha"]),
            "lean_predicted_speedup": r3(fig["spec-draft-lean"]["predicted"]),
            "verify_cost_steps": round(head["verify"], 3), "predicted_with_verify_cost": r3(head["predicted_v"]),
            "speedup_vs_own_loop": round(tps[HEADLINE_ARM] / tps["own-loop"], 3),
            "decode_speedup_vs_own_loop": round(head["decode_speedup"], 3),
            "tokens_per_target_call": round(head["tokens_per_call"], 3),
            "tokens_per_s": {a: round(v, 1) for a, v in tps.items()},
            "decode_tokens_per_s": {a: round(stats[a].tokens_per_s, 1) for a in OWN_ARMS},
            "prefill_ms": per_prompt,
            "lookup_speedup_vs_target": round(tps["spec-lookup"] / target_tps, 3),
            "lookup_alpha": r3(fig["spec-lookup"]["alpha"]),
            "lookup_mean_proposed_per_round": round(fig["spec-lookup"]["mean_proposed"], 3),
            "lookup_predicted_speedup": r3(fig["spec-lookup"]["predicted"]),
            "lookup_decode_speedup_vs_own_loop": round(fig["spec-lookup"]["decode_speedup"], 3),
            "new_tokens": new_tokens, "same_new_tokens": len(counts) == 1, "same_work": SAME_WORK,
            "decode_notes": notes, "identical_per_arm": same,
            "prompts": len(prompts), "repeats": repeats, "max_new_tokens": n_new}


def main(argv=None) -> dict:
    from workbench.measure.environment import environment_fingerprint
    from workbench.runtime.torch_runner import resolve_device
    from workbench.tasks import get_task

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    task = get_task("causal-lm")
    target, draft = task.load_model().to(device), task.load_draft().to(device)
    prompts = [p.to(device) for p in task.prompts(args.prompts, args.prompt_tokens)]
    n_new, gamma = args.max_new_tokens, args.gamma
    result = run_benchmark(target, draft, prompts, task.tokenizer.eos_token_id, gamma, n_new, args.repeats, device)
    tps = result["tokens_per_s"]
    target_tps = max(tps["hf-generate"], tps["own-loop"])
    print(f"{'arm':<18} {'tokens/s':>9} {'vs target':>9}  identical   ({args.threads}-thread {device}, {len(prompts)} "
          f"prompts x {args.repeats} repeats, {n_new} new tokens, gamma={gamma}; end-to-end tokens/s)")
    for a, v in tps.items():
        print(f"{a:<18} {v:9.1f} {v / target_tps:9.2f}  {result['identical_per_arm'][a]}")
    def fmt(v):
        return "n/a" if v is None else f"{v:.2f}"

    print(f"headline ({result['headline_arm']}, {result['headline_draft_forward']} draft forward): "
          f"alpha={fmt(result['alpha'])} c={result['c']:.3f} tokens/target call={result['tokens_per_target_call']:.2f} "
          f"predicted={fmt(result['predicted_speedup'])}x decode-only over our loop="
          f"{result['decode_speedup_vs_own_loop']:.2f}x (measured/predicted={fmt(result['measured_over_predicted'])}); "
          f"end to end {result['speedup_vs_target']:.2f}x")
    print(f"lean GPT-2 draft forward: c={result['lean_c']:.3f}, end to end {result['lean_speedup_vs_target']:.2f}x")
    print(f"verify call = {result['verify_cost_steps']:.2f} target steps; prediction with that cost "
          f"{fmt(result['predicted_with_verify_cost'])}x")
    print(f"prompt lookup: alpha={fmt(result['lookup_alpha'])} proposed/round="
          f"{result['lookup_mean_proposed_per_round']:.2f} predicted={fmt(result['lookup_predicted_speedup'])}x "
          f"decode-only over our loop={result['lookup_decode_speedup_vs_own_loop']:.2f}x")
    env = environment_fingerprint()
    result.update(threads=args.threads, device=device, cpu=env.get("cpu_model", env.get("cpu")), torch=torch.__version__)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
