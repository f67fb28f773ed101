"""Speculative-decoding arms: the target alone and every drafter setting, as arms of the one runner.

Arms (greedy, batch 1, each call = one whole request of exactly ``max_new_tokens`` new tokens, no EOS stop):

    hf-generate-fp32   transformers ``generate`` on the target alone (the baseline every ``speedup`` is over)
    hf-assisted        HF assisted generation with the draft, its defaults (adaptive schedule, up to 20 drafts)
    hf-assisted-gamma  the same with ``num_assistant_tokens=gamma``, constant schedule, no confidence cut-off
    hf-prompt-lookup   HF ``prompt_lookup_num_tokens=gamma``
    own-loop           our eager loop on the target alone (DynamicCache, one token per call)
    spec-draft-hf      our eager engine (:mod:`workbench.decoding.speculative`), plain HF draft forward
    spec-draft-lean    the same with the lean GPT-2 draft forward (:mod:`workbench.decoding.lean_gpt2`)
    spec-lookup        the same with prompt lookup
    fast-loop-fp32     the target alone on the fast loop (static cache, compiled step: :mod:`~workbench.decoding.fast_loop`)
    fast-loop-spec     speculative decoding on the fast loop (:mod:`~workbench.decoding.fast_speculative`): compiled
                       draft round + one compiled verify call of gamma + 1 tokens

Same work in every arm: the same prompts in the same order, exactly ``max_new_tokens`` new tokens each. HF fills an
EOS left as None from the model's config, so the HF assisted / lookup arms get an EOS id the model can never emit
(its vocabulary size); the others run with none. Quality is greedy agreement with the baseline's tokens, prompt by
prompt (:func:`agreement`): lossless arms have a drop CI of [0, 0] and are eligible at tolerance 0.

:func:`compare_speculative` runs them through :func:`workbench.arms.runner.compare` (equal warm-up, seeded order per
round, a selection run, the winner confirmed on fresh timings against the baseline), then confirms the fast-loop pair
(fast-loop-spec vs fast-loop-fp32) on fresh timings too, and reads each speculative arm's alpha, c, verify cost and
prediction (:func:`workbench.measure.speculative_model.speculative_figures`) off the stats of its own timed calls: the
prediction is compared with the decode speedup measured over its own target-alone loop (TPOT ratio, prefill apart).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from workbench.arms.base import Arm, ArmContext, BuiltArm

BASELINE = "hf-generate-fp32"
HF_ARMS = ("hf-assisted", "hf-assisted-gamma", "hf-prompt-lookup")
EAGER_SPEC = ("spec-draft-hf", "spec-draft-lean", "spec-lookup")
HEADLINE = "fast-loop-spec"
TARGET_OF = {**{a: "own-loop" for a in EAGER_SPEC}, HEADLINE: "fast-loop-fp32"}   # each spec arm's own target loop

_HF_LOOP = "HF generate loop (logits processors, stopping criteria, cache objects per step)"
NOTES = {
    BASELINE: f"{_HF_LOOP}; target alone",
    "hf-assisted": f"{_HF_LOOP}; HF draft forward; HF's default draft length and schedule (not gamma)",
    "hf-assisted-gamma": f"{_HF_LOOP}; HF draft forward; gamma drafts per round, constant",
    "hf-prompt-lookup": f"{_HF_LOOP}; prompt lookup up to gamma tokens",
    "own-loop": "own eager loop (DynamicCache); target alone",
    "spec-draft-hf": "own eager engine; HF draft forward; gamma drafts per round",
    "spec-draft-lean": "own eager engine; lean GPT-2 draft forward; gamma drafts per round",
    "spec-lookup": "own eager engine; prompt lookup up to gamma tokens",
    "fast-loop-fp32": "fast loop: static cache, compiled one-token step; target alone",
    HEADLINE: "fast loop: static caches, compiled draft round (gamma steps) + one compiled verify of gamma + 1 tokens",
}
SAME_WORK = ("greedy; exactly max_new_tokens new tokens per prompt, no EOS stop (HF assisted / lookup: an EOS id "
             "outside the vocabulary); batch 1, no padding; the same prompts in the same order")


@dataclass
class Recorder:
    """What every call of every arm made, in call order: ``calls[arm]`` = [(prompt index, tokens, stats, requests)].

    ``stats`` is the engine's :class:`~workbench.decoding.speculative.SpecStats` (None for HF arms), ``requests`` the
    (start, emit times, emit counts) of the request (None where the arm does not stream)."""

    calls: dict = field(default_factory=dict)

    def add(self, arm: str, index: int, tokens, stats=None, requests=None) -> None:
        self.calls.setdefault(arm, []).append((index, tokens, stats, requests))

    def window(self, arm: str, start: int, count: int) -> list:
        """The calls ``start .. start + count`` of ``arm`` (a run's timed calls, after its warm-up)."""
        return self.calls.get(arm, [])[start:start + count]


def agreement(tokens, reference, prompt_len: int) -> float:
    """Share of the new tokens equal to the reference's at the same position (1.0: identical output)."""
    a, b = tokens[0, prompt_len:], reference[0, prompt_len:]
    n = min(len(a), len(b))
    return float((a[:n] == b[:n]).float().sum()) / max(len(b), 1)


def _hf_extra(target, draft, gamma: int) -> dict:
    """The HF assisted / lookup arms' extra ``generate`` arguments (assistants are copies: HF edits their config)."""
    tuned = copy.deepcopy(draft)
    tuned.generation_config.num_assistant_tokens = gamma
    tuned.generation_config.num_assistant_tokens_schedule = "constant"
    tuned.generation_config.assistant_confidence_threshold = 0.0
    return {"hf-assisted": {"assistant_model": copy.deepcopy(draft)}, "hf-assisted-gamma": {"assistant_model": tuned},
            "hf-prompt-lookup": {"prompt_lookup_num_tokens": gamma}}


def speculative_arms(target, draft, prompts: list, recorder: Recorder, gamma: int = 4, max_new_tokens: int = 64,
                     compile: bool = True, fast_loop_options: dict | None = None) -> list[Arm]:
    """The arms above over ``prompts`` ([1, T] each, on the models' device); each call records into ``recorder``.
    ``fast_loop_options``: keyword arguments (``cpp_wrapper``, ``gemm_template``) given alike to the fast loop and to
    the speculative fast loop, so the two compile their steps the same way."""
    import torch

    from workbench.decoding.drafters import ModelDrafter, PromptLookupDrafter
    from workbench.decoding.fast_loop import FastDecoder, hf_generate
    from workbench.decoding.fast_speculative import FastSpeculativeDecoder
    from workbench.decoding.lm import vocab_size
    from workbench.decoding.speculative import autoregressive_generate, speculative_generate

    n_new = max_new_tokens
    cache_len = max(p.shape[1] for p in prompts) + n_new
    never = vocab_size(target)   # an EOS id no token can equal
    options = dict(fast_loop_options or {})

    def arm(name, kind, make, baseline=False):
        """``make() -> (run, meta)``, called at build time (a compiled arm compiles and warms up there, untimed);
        ``run(ids) -> (tokens, stats, requests)``. The built arm walks the prompts and records every call."""
        def build(ctx: ArmContext) -> BuiltArm:
            run, meta = make()
            calls = iter(range(1 << 62))

            def call():
                i = next(calls) % len(prompts)
                with torch.inference_mode():
                    tokens, stats, requests = run(prompts[i])
                recorder.add(name, i, tokens, stats, requests)
            return BuiltArm(call=call, quality=lambda: _quality(recorder, name, prompts), meta=meta)
        return Arm(name, kind, build, baseline=baseline, notes=NOTES[name])

    def plain(run):
        return lambda: (run, {})

    def hf(extra):
        def run(ids):
            tokens = target.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n_new, do_sample=False,
                                     eos_token_id=never, pad_token_id=0, **extra)
            return tokens, None, None
        return run

    def from_result(res):
        return res.tokens, None, res.requests()

    def from_engine(pair):
        tokens, stats = pair
        return tokens, stats, stats.requests

    def fast_loop():   # built when the arm is built (compiled + warmed up there, outside the timed calls)
        dec = FastDecoder(target, max_batch_size=1, max_cache_len=cache_len, compile=compile, **options)
        dec.generate(prompts[0], 2)
        return (lambda ids: from_result(dec.generate(ids, n_new))), {"compile_seconds": round(dec.compile_seconds, 2),
                                                                      "label": dec.label}

    def fast_spec():
        spec = FastSpeculativeDecoder(target, draft, gamma=gamma, max_cache_len=cache_len, compile=compile, **options)
        spec.generate(prompts[0], 2)
        return (lambda ids: from_engine(spec.generate(ids, n_new))), {"compile_seconds": round(spec.compile_seconds, 2),
                                                                       "label": spec.label}

    extra = _hf_extra(target, draft, gamma)
    drafters = {"spec-draft-hf": ModelDrafter(draft, target, lean=False),
                "spec-draft-lean": ModelDrafter(draft, target, lean=True), "spec-lookup": PromptLookupDrafter()}

    def spec(drafter):
        return lambda ids: from_engine(speculative_generate(target, drafter, ids, gamma, 0.0, n_new))

    return [arm(BASELINE, "baseline", plain(lambda ids: from_result(hf_generate(target, ids, n_new))), baseline=True),
            *[arm(name, "hf-speculative", plain(hf(extra[name]))) for name in HF_ARMS],
            arm("own-loop", "decode", plain(lambda ids: from_engine(autoregressive_generate(target, ids, n_new)))),
            *[arm(name, "speculative", plain(spec(drafters[name]))) for name in EAGER_SPEC],
            arm("fast-loop-fp32", "decode", fast_loop),
            arm(HEADLINE, "speculative", fast_spec)]


def _quality(recorder: Recorder, name: str, prompts: list):
    """Greedy agreement with the baseline's tokens per prompt, from the calls already made (nothing is re-run)."""
    from workbench.util.stats import accuracy_with_ci
    from workbench.tasks.base import QualityResult

    mine = {i: t for i, t, _s, _r in recorder.calls.get(name, [])}
    ref = {i: t for i, t, _s, _r in recorder.calls.get(BASELINE, [])}
    missing = [i for i in range(len(prompts)) if i not in mine or i not in ref]
    if missing:
        raise RuntimeError(f"prompts {missing} were never generated by {name} and {BASELINE}: time more calls than "
                           "prompts")
    scores = [agreement(mine[i], ref[i], prompts[i].shape[1]) for i in range(len(prompts))]
    value, low, high = accuracy_with_ci(scores)
    return QualityResult("accuracy", value, low, high, len(scores), True,
                         {"what": "greedy token agreement with hf-generate-fp32"}, tuple(scores))


def decode_seconds_per_token(calls: list) -> float | None:
    """Decode time per token over the calls' requests: (last emission - first) / tokens emitted after the first.

    The same definition for every engine, exact whatever the first emission held (the fast loops' prefill token, the
    eager engine's first round of k + 1 tokens, one token of a plain loop). None when no request streamed."""
    span = tokens = 0.0
    for _i, _t, _s, requests in calls:
        for _start, times, counts, *_sequences in requests or ():  # (start, emits, counts[, sequences])
            if len(times) > 1:
                span, tokens = span + times[-1] - times[0], tokens + sum(counts) - counts[0]
    return span / tokens if tokens > 0 and span > 0 else None


def spec_figures(recorder: Recorder, name: str, start: int, count: int) -> dict:
    """One speculative arm's alpha, c, verify cost and prediction over its timed calls, against its own target loop
    (:data:`TARGET_OF`), and the decode speedup they predict as measured: the target loop's decode time per token
    over this arm's (:func:`decode_seconds_per_token`)."""
    from workbench.measure.speculative_model import speculative_figures

    calls = recorder.window(name, start, count)
    base = TARGET_OF[name]
    step, mine = decode_seconds_per_token(recorder.window(base, start, count)), decode_seconds_per_token(calls)
    if not calls or step is None or mine is None:
        return {"target_loop": base, "note": "not measured (the arm or its target loop did not run)"}
    stats = calls[0][2]
    for _i, _t, s, _r in calls[1:]:
        stats = stats.merge(s)
    fig = speculative_figures(stats, step)
    measured = step / mine
    return {"target_loop": base, **fig, "decode_speedup": measured,
            "measured_over_predicted": measured / fig["predicted_speedup"], "target_step_ms": step * 1e3,
            "decode_ms_per_token": mine * 1e3}


def _r(value, digits: int = 3):
    """Rounded, and None for NaN / None (JSON has no NaN; a figure not measured is absent)."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(value, digits)


def compare_speculative(target, draft, prompts: list, gamma: int = 4, max_new_tokens: int = 64, repeats: int = 2,
                        threads: int | None = None, device: str = "cpu", compile: bool = True, isa: dict | None = None,
                        log=print, fast_loop_options: dict | None = None) -> dict:
    """Every arm above on ``prompts``, interleaved; the JSON-ready result ``benchmarks/speculative.py`` prints.

    Keys: ``identical`` (our arms' greedy tokens = the baseline's on every prompt), ``speedup_vs_target`` (fast-loop-spec over the
    faster eager target-alone arm, hf-generate-fp32 or own-loop), ``speedup_vs_hf_assisted`` (over the faster HF
    assisted arm), ``fast_loop_spec_speedup`` (over fast-loop-fp32: selection run, and ``..._confirmed`` on fresh
    timings of those two alone), ``predicted_speedup`` / ``alpha`` / ``c`` / ``verify_cost_steps`` /
    ``decode_speedup`` / ``prediction_error`` (fast-loop-spec against fast-loop-fp32, decode only), ``selection``
    (winner, selection and confirmed ratio over hf-generate-fp32), per-arm ``rows`` and ``figures``. End-to-end
    ratios are of median request latencies (every request makes the same tokens).
    """
    from workbench.arms.runner import compare, time_arms

    recorder = Recorder()
    arms = speculative_arms(target, draft, prompts, recorder, gamma, max_new_tokens, compile, fast_loop_options)
    rounds, warmup = repeats * len(prompts), 1
    ctx = ArmContext(threads=threads, device=device, log=log)
    result = compare(arms, ctx, tolerance=0.0, rounds=rounds, calls_per_turn=1, warmup=warmup, isa=isa, keep=True)
    try:
        pair = {n: result.built[n] for n in ("fast-loop-fp32", HEADLINE) if n in result.built}
        fresh = time_arms(pair, rounds=rounds, calls_per_turn=1, warmup=warmup, threads=threads,
                          device=device) if len(pair) == 2 else None
    finally:
        result.close()
    sel = result.selection
    figures = {n: spec_figures(recorder, n, warmup, sel.timing[n].n_calls) for n in TARGET_OF if n in sel.timing}
    rows = {r["arm"]: r for r in result.rows}
    p50 = {n: t.p50_ms for n, t in sel.timing.items()}

    def over(arm, *bases):
        have = [p50[b] for b in bases if b in p50]
        return _r(min(have) / p50[arm]) if arm in p50 and have else None

    head = figures.get(HEADLINE, {})
    identical = {n: r["quality"] == 1.0 if r["quality"] is not None else None for n, r in rows.items()}
    ours = [identical[n] for n in ("own-loop", *EAGER_SPEC, "fast-loop-fp32", HEADLINE) if n in identical]
    tokens_per_s = {n: _r(t.n_calls * max_new_tokens / t.total_ms * 1e3, 1) for n, t in sel.timing.items()}
    predicted = head.get("predicted_speedup")
    return {"identical": bool(ours) and all(v is True for v in ours),
            "speedup_vs_target": over(HEADLINE, BASELINE, "own-loop"),
            "speedup_vs_hf_assisted": over(HEADLINE, "hf-assisted", "hf-assisted-gamma"),
            "fast_loop_spec_speedup": over(HEADLINE, "fast-loop-fp32"),
            "fast_loop_spec_speedup_confirmed": fresh.ratio("fast-loop-fp32", HEADLINE) if fresh else None,
            "predicted_speedup": _r(predicted), "decode_speedup": _r(head.get("decode_speedup")),
            "prediction_error": _r(head["measured_over_predicted"] - 1) if predicted else None,
            "predicted_textbook_speedup": _r(head.get("predicted_textbook_speedup")),
            "alpha": _r(head.get("alpha")), "c": _r(head.get("c"), 4), "verify_cost_steps": _r(head.get("verify_cost_steps")),
            "gamma": gamma, "headline_arm": HEADLINE, "prediction_basis": (
                "decode only (TPOT, prefill apart): fast-loop-spec over fast-loop-fp32; c and the verify cost in "
                "fast-loop-fp32 decode steps, measured in the same timed calls"),
            "selection": {"baseline": result.baseline, "winner": result.pick.arm, "pick": result.pick.reason,
                          "selection_speedup": result.selection_speedup, "confirmed_speedup": result.confirmed_speedup},
            "eager_speedup_vs_target": over("spec-draft-hf", BASELINE, "own-loop"),
            "figures": {n: {k: (_r(v, 4) if isinstance(v, float) else v) for k, v in f.items()}
                        for n, f in figures.items()},
            "tokens_per_s": tokens_per_s, "speedup": {n: rows[n]["speedup"] for n in rows},
            "identical_per_arm": identical, "rows": result.rows, "same_work": SAME_WORK, "decode_notes": NOTES,
            "prompts": len(prompts), "repeats": repeats, "max_new_tokens": max_new_tokens}


__all__ = ["speculative_arms", "compare_speculative", "spec_figures", "agreement", "Recorder", "BASELINE", "HEADLINE"]
