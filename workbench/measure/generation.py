"""Generation scenario: plain decoding (KV cache on/off) and speculative decoding sweeps (gamma, temperature, drafter).

Arms run interleaved prompt by prompt in one process, so a shared CPU's drift hits every arm alike. Every arm does
the same work: the same prompts, exactly ``max_new_tokens`` new tokens each (no EOS stop, no padding: batch 1), this
project's own loop (:mod:`workbench.decoding.speculative`), on the target's device. Each row says so in
``decode_notes`` (and where an arm differs, how).

Prefill is timed apart from decoding. ``prefill_ms`` is the prompt's prefill per prompt (target, and the draft for
a draft-model arm: ``target_prefill_ms`` / ``draft_prefill_ms``); ``tokens_per_s`` is new tokens over **decode**
time only, ``e2e_tokens_per_s`` over prefill + decode; ``speedup`` is the decode-time ratio over the target alone
(what the model below predicts), ``e2e_speedup`` the end-to-end one.

Each speculative row carries the measured acceptance rate alpha, the acceptance- and proposal-length histograms,
the draft/target cost ratio c (one draft decode call / one target decode step, both without prefill, both measured
here), the measured cost of one verify call in target steps, the measured speedup, and the speedup
:func:`predicted_speedup` expects from alpha, the proposal lengths actually drafted, c and that verify cost (Leviathan
et al. 2023, for a proposal length that varies from round to round, with the verify call charged what it cost:
:mod:`workbench.measure.speculative_model`).

Every row that decoded also carries the request metrics of :mod:`workbench.measure.request_metrics` (TTFT, TPOT,
ITL per accepted token, e2e, output tokens/s per request and aggregate; definitions there) and, for cached decoding,
the roofline: ``bytes_per_token`` (weights + KV cache at the mean context, per decode call of target and draft model,
over the tokens made), ``bandwidth_gb_s`` and ``bandwidth_utilisation`` against the read bandwidth measured on this
device at the run's thread count (:mod:`workbench.measure.roofline`).

A point whose decode time is zero or negative (a broken timer) is recorded as failed with the reason, never as a
huge tokens/s.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from workbench.decoding.drafters import DRAFTERS, make_drafter
from workbench.decoding.speculative import SpecStats, autoregressive_generate, speculative_generate, SpecConfig
from workbench.measure.speculative_model import (break_even_alpha, predicted_speedup,  # noqa: F401 - re-exported
                                                 speculative_figures)


@dataclass(frozen=True)
class GenerationTrial:
    """What the generation scenario sweeps.

    Args:
        gammas: draft lengths to try (each >= 1).
        temperatures: 0 = greedy (output checked against the target's own), > 0 = sampling.
        drafters: any of "draft-model", "prompt-lookup".
        n_prompts / prompt_tokens: held-out prompts from ``task.prompts``.
        max_new_tokens: generated per prompt (no EOS stop, so every arm does the same work).
        kv_cache_off: also time plain decoding without the KV cache (slow: quadratic), at greedy when the sweep
            has temperature 0, else at its first temperature, against the cached arm at the same temperature.

    Example:
        >>> rows = measure_generation(task, GenerationTrial.quick())   # doctest: +SKIP
    """

    gammas: tuple = (1, 2, 3, 4, 5, 6, 8)
    temperatures: tuple = (0.0,)
    drafters: tuple = DRAFTERS
    n_prompts: int = 8
    prompt_tokens: int = 32
    max_new_tokens: int = 64
    kv_cache_off: bool = True
    seed: int = 0

    def __post_init__(self):
        for gamma in self.gammas:
            SpecConfig(gamma=gamma)          # same message as the engine for gamma < 1
        if not self.temperatures:
            raise ValueError("temperatures is empty: use (0.0,) for greedy")
        for t in self.temperatures:
            SpecConfig(temperature=t)
        bad = [d for d in self.drafters if d not in DRAFTERS]
        if bad or not self.drafters:
            raise ValueError(f"drafters {bad or '()'}: use some of {DRAFTERS}")
        if self.n_prompts < 1 or self.prompt_tokens < 1 or self.max_new_tokens < 1:
            raise ValueError("n_prompts, prompt_tokens and max_new_tokens must be >= 1")

    @property
    def kv_off_temperature(self) -> float:
        """The temperature the KV-cache-off arm runs at: 0 (greedy, output checked) when swept, else the first."""
        return 0.0 if 0.0 in self.temperatures else self.temperatures[0]

    @classmethod
    def quick(cls) -> "GenerationTrial":
        """A minute-scale sweep for notebooks and CI."""
        return cls(gammas=(1, 2, 4), n_prompts=3, max_new_tokens=32, kv_cache_off=False)

    @classmethod
    def full(cls) -> "GenerationTrial":
        return cls(temperatures=(0.0, 0.7, 1.0), n_prompts=12, max_new_tokens=96)


def _clean(row: dict) -> dict:
    """NaN (nothing to measure, e.g. alpha when no draft was ever tested) is not JSON: store None."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def timing_problem(stats: SpecStats, what: str = "this arm") -> str | None:
    """Why ``stats``' times cannot give a rate (a decode time that is not positive, a negative phase), or None."""
    if not (stats.decode_seconds > 0 and math.isfinite(stats.decode_seconds)):
        return (f"{what}'s decode time is {stats.decode_seconds:.3g} s over {stats.new_tokens} tokens: a decode time "
                "must be positive (the timer went wrong), so no tokens/s or speedup is reported")
    negative = [name for name in ("target_seconds", "draft_seconds", "target_prefill_seconds", "draft_prefill_seconds")
                if getattr(stats, name) < 0]
    if negative:
        return f"{what} has negative times ({', '.join(negative)}): the timer went wrong"
    if stats.target_calls < 1:
        return f"{what} made no target decode call"
    return None


def phase_columns(stats: SpecStats) -> dict:
    """Prefill and decode times per prompt (ms) and the two rates: decode-only ``tokens_per_s``, ``e2e_tokens_per_s``."""
    per = max(stats.generations, 1)
    return {"tokens_per_s": round(stats.tokens_per_s, 2), "e2e_tokens_per_s": round(stats.e2e_tokens_per_s, 2),
            "prefill_ms": round(stats.prefill_seconds * 1e3 / per, 3),
            "target_prefill_ms": round(stats.target_prefill_seconds * 1e3 / per, 3),
            "decode_ms": round(stats.decode_seconds * 1e3 / per, 3)}


def spec_row(stats: SpecStats, base: SpecStats, greedy_match: bool | None) -> dict:
    """Figures of one speculative arm summed over prompts, against the target alone (``base``).

    c = (draft decode time / draft decode calls) / (target-alone decode time / its decode steps): prefill is in
    neither. The prediction (:func:`~workbench.measure.speculative_model.speculative_figures`) uses the proposal
    lengths this arm actually drafted, its drafter calls per round and the measured cost of its verify call.
    """
    gamma = stats.gamma
    fig = speculative_figures(stats, base.target_seconds / base.target_calls)   # target decode step, prefill apart
    speedup = stats.tokens_per_s / base.tokens_per_s
    per = max(stats.generations, 1)
    return _clean({**phase_columns(stats), "draft_prefill_ms": round(stats.draft_prefill_seconds * 1e3 / per, 3),
                   "target_tokens_per_s": round(base.tokens_per_s, 2),
                   "target_e2e_tokens_per_s": round(base.e2e_tokens_per_s, 2),
                   "speedup": round(speedup, 4), "e2e_speedup": round(stats.e2e_tokens_per_s / base.e2e_tokens_per_s, 4),
                   "alpha": round(fig["alpha"], 4),
                   "acceptance_rate": round(stats.accepted / max(stats.proposed, 1), 4),
                   "accept_hist": np.bincount(stats.accept_lengths, minlength=gamma + 1).tolist(),
                   "proposal_hist": np.bincount(stats.proposal_lengths, minlength=gamma + 1).tolist(),
                   "mean_proposed_per_round": round(fig["mean_proposed_per_round"], 4),
                   "draft_calls_per_round": round(fig["draft_calls_per_round"], 4),
                   "mean_accepted_per_call": round(stats.accepted / stats.target_calls, 4),
                   "tokens_per_target_call": round(fig["tokens_per_target_call"], 4),
                   "c": round(fig["c"], 4), "verify_cost_steps": round(fig["verify_cost_steps"], 4),
                   "predicted_speedup": round(fig["predicted_speedup"], 4),
                   "measured_over_predicted": round(speedup / fig["predicted_speedup"], 4),
                   "predicted_textbook_speedup": round(fig["predicted_textbook_speedup"], 4),
                   "break_even_alpha": round(fig["break_even_alpha"], 4),
                   "new_tokens": stats.new_tokens, "target_calls": stats.target_calls, "identical": greedy_match})


def decode_columns(stats: SpecStats, calls: list | None, context: float, peak_gb_s: float) -> dict:
    """Request metrics of ``stats``' generations and, when ``calls`` [(model, decode calls)] is given, the roofline."""
    from workbench.measure.request_metrics import request_metrics
    from workbench.measure.roofline import decode_bytes_per_token, roofline_columns

    try:
        cols = request_metrics(stats.requests)
    except ValueError as err:   # a clock that went backwards: say so instead of failing the row
        cols = {"request_metrics_note": str(err)}
    if calls is None:
        cols["roofline_note"] = "no KV cache: every step recomputes the sequence, so bytes per token do not apply"
    else:
        per_token = decode_bytes_per_token(calls, stats.new_tokens, context)
        cols.update(roofline_columns(per_token, stats.tokens_per_s, peak_gb_s))
    return cols


def _run_interleaved(arms: list, run, prompts: list, seed: int, progress: bool) -> tuple[dict, dict]:
    """Every arm on every prompt, prompt by prompt (round k: each arm on prompt k with seed + k).

    Returns each arm's SpecStats merged over prompts, and its outputs in prompt order.
    """
    from tqdm.auto import tqdm

    from workbench.measure.interleaved import cycling, round_robin

    numbered = list(enumerate(prompts))
    callers = {arm: cycling(lambda item, arm=arm: run(arm, item[1], seed + item[0]), numbered) for arm in arms}
    stats: dict = {}
    outputs: dict = {}
    with tqdm(total=len(prompts), desc="generation", disable=not progress) as bar:
        for _round, arm, (out, s) in round_robin(callers, len(prompts)):
            stats[arm] = s if arm not in stats else stats[arm].merge(s)
            outputs.setdefault(arm, []).append(out)
            if arm == arms[-1]:
                bar.update(1)
    return stats, outputs


_SAME_WORK = "no EOS stop, no padding (batch 1), exactly max_new_tokens new tokens per prompt"


def _decode_notes(mode: str, kv_cache: bool, draft_forward: str | None, new_tokens: int, expected: int) -> str:
    """What this arm's decode work is, in words (the same for every arm but where said)."""
    if mode == "plain" and not kv_cache:
        notes = ("own loop, target alone, no KV cache: every step re-runs the whole sequence (no prefill; "
                 "last-position logits only)")
    elif mode == "plain":
        notes = "own loop, target alone: prefill = the prompt but its last token, then 1 token per call"
    else:
        notes = (f"own speculative engine ({draft_forward} draft forward): prefill = the prompt but its last token "
                 "into target and draft, then 1 token + drafts per target call")
    notes += f"; {_SAME_WORK}"
    if new_tokens != expected:
        notes += f"; made {new_tokens} new tokens, not {expected}"
    return notes


def measure_generation(task, trial: GenerationTrial | None = None, target=None, draft=None, table=None,
                       threads: int | None = None, progress: bool = True, device: str = "cpu") -> list[dict]:
    """Run the generation scenario on ``task``'s held-out prompts; return (and append to ``table``) one row per arm.

    Args:
        task: a causal-LM task (``task.prompts``, ``task.load_model``, ``task.load_draft``).
        trial: what to sweep (default :class:`GenerationTrial`).
        target / draft: models to use instead of the task's own (e.g. a distilled student as draft); the draft must
            be on the target's device.
        table: a :class:`~workbench.results.ResultsTable`; rows are appended as they are measured.
        threads: intra-op threads for every arm.
        device: where the task's own target runs ("cpu", "cuda", "auto"); ignored when ``target`` is given (its own
            device is used). Everything runs there: sequences, drafts and verification.

    Example:
        >>> table = ResultsTable.for_study("speculative")                          # doctest: +SKIP
        >>> measure_generation(task, GenerationTrial.quick(), table=table)
    """
    from workbench.decoding.lm import model_device
    from workbench.measure.roofline import run_read_bandwidth
    from workbench.measure.timing import pin_threads
    from workbench.runtime import require_torch_module

    trial = trial or GenerationTrial()
    if not getattr(task, "generates_text", False):
        raise ValueError(f"generation needs a causal-lm task, got {getattr(task, 'kind', type(task).__name__)!r}")
    used_threads = pin_threads(threads)
    base_variant = task.baseline(device) if target is None else None
    target = target if target is not None else require_torch_module(base_variant, "generation")
    on = model_device(target)
    if "draft-model" in trial.drafters and draft is None:
        draft = task.load_draft().to(on)
    prompts = [p.to(on) for p in task.prompts(trial.n_prompts, trial.prompt_tokens)]
    arms = [("plain", None, t, True) for t in trial.temperatures]
    arms += [("spec", d, t, g) for t in trial.temperatures for d in trial.drafters for g in trial.gammas]
    if trial.kv_cache_off:
        arms.append(("plain", None, trial.kv_off_temperature, False))
    drafters = {d: make_drafter(SpecConfig(drafter=d), draft, target) for d in trial.drafters}

    def run(arm, ids, seed):
        mode, drafter, temp, gamma_or_cache = arm
        gen = torch.Generator(device=on).manual_seed(seed)
        if mode == "plain":
            return autoregressive_generate(target, ids, trial.max_new_tokens, use_cache=gamma_or_cache,
                                           temperature=temp, generator=gen)
        return speculative_generate(target, drafters[drafter], ids, gamma_or_cache, temp, trial.max_new_tokens,
                                    generator=gen)

    for arm in arms:   # warm-up: first calls allocate, fill caches and pick kernels
        run(arm, prompts[0], trial.seed)
    stats, outputs = _run_interleaved(arms, run, prompts, trial.seed, progress)
    peak = run_read_bandwidth(on.type, used_threads)   # this device's reads at this run's threads (once)
    context = trial.prompt_tokens + trial.max_new_tokens / 2   # mean KV length over the decode steps

    common = {"task": task.name, "batch_size": 1, "seq_len": trial.prompt_tokens, "max_new_tokens": trial.max_new_tokens,
              "n_prompts": len(prompts), "threads": used_threads, "device": on.type, "eos_stop": False}
    if base_variant is not None:
        common.update(base_variant.describe())
    expected = len(prompts) * trial.max_new_tokens
    rows = []
    for arm in arms:
        mode, drafter, temp, g = arm
        s, base_arm = stats[arm], ("plain", None, temp, True)
        base = stats[base_arm]
        forward = getattr(drafters.get(drafter), "forward_kind", None) if mode == "spec" else None
        if mode == "plain":
            head = {"variant": f"target kv-cache {'on' if g else 'off'}", "scenario": "generation-plain",
                    "kv_cache": g, "temperature": temp}
        else:
            head = {"variant": f"speculative {drafter} gamma={g}", "scenario": "generation-speculative",
                    "drafter": drafter, "gamma": g, "temperature": temp}
            if forward is not None:
                head["draft_forward"] = forward
        head["decode_notes"] = _decode_notes(mode, g, forward, s.new_tokens, expected)
        calls = [(target, s.target_calls)] + ([(draft, s.draft_calls)] if drafter == "draft-model" else [])
        if not timing_problem(s):   # a broken clock gives no metrics (the row fails below)
            head.update(decode_columns(s, calls if mode == "spec" or g else None, context, peak))
        problem = timing_problem(s) or (timing_problem(base, "the target-alone arm") if arm != base_arm else None)
        if problem:
            row = {**common, **head, "failed": True, "failure": "timing", "error": problem,
                   "new_tokens": s.new_tokens, "target_calls": s.target_calls}
        elif mode == "plain":
            same = (all(torch.equal(a, b) for a, b in zip(outputs[arm], outputs[base_arm]))
                    if temp == 0 and arm != base_arm else None)
            row = {**common, **head, **_clean(phase_columns(s)), "new_tokens": s.new_tokens,
                   "target_calls": s.target_calls, "speedup": round(s.tokens_per_s / base.tokens_per_s, 4),
                   "e2e_speedup": round(s.e2e_tokens_per_s / base.e2e_tokens_per_s, 4), "failed": False}
            if arm != base_arm:
                row["identical"] = same
        else:
            same = all(torch.equal(a, b) for a, b in zip(outputs[arm], outputs[base_arm])) if temp == 0 else None
            row = {**common, **head, **spec_row(s, base, same), "failed": False}
        rows.append(table.append(row) if table is not None else row)
    return rows


def measure_text2text_generation(task, variant, n_sources: int = 4, new_tokens: int = 16,
                                 repeats: int = 3) -> dict:
    """Text2text (encoder-decoder) generation timing: greedy generation per output token, batch 1, on the task's
    held-out sources.

    Each source is generated with 1 and with ``new_tokens`` tokens (EOS suppressed by ``min_new_tokens`` so every
    run makes the same count); the median first-token time is encoder + first step, and the per-token time is the
    median of (t_N - t_1) / (N - 1), the decoder steps alone. Medians over ``repeats`` runs of each source.
    """
    import statistics

    from workbench.measure.timing import timed_call
    from workbench.tasks.text2text import generate_ids

    if new_tokens < 2:
        raise ValueError("new_tokens must be >= 2: the per-token time is (t_N - t_1) / (N - 1)")
    sources = task._sources("test")[:n_sources]
    first, per_token = [], []
    for source in sources:
        batch = task.encode([source])
        generate_ids(variant, batch, 2, 2)  # warm-up: sessions, allocator, caches
        t1 = statistics.median(timed_call(lambda: generate_ids(variant, batch, 1, 1), variant.device)[0]
                               for _ in range(repeats))
        runs = [timed_call(lambda: generate_ids(variant, batch, new_tokens, new_tokens), variant.device)
                for _ in range(repeats)]
        made = runs[0][1].shape[1] - 1  # the output starts with the decoder start token
        first.append(t1)
        per_token.append((statistics.median(ms for ms, _ in runs) - t1) / max(1, made - 1))
    from workbench.runtime import runner_threads

    return {**variant.describe(), "scenario": "text2text-generation", "threads": runner_threads(variant), "batch_size": 1, "n_sources": len(sources), "new_tokens": new_tokens,
            "repeats": repeats, "first_token_ms": round(statistics.median(first), 3),
            "ms_per_output_token": round(statistics.median(per_token), 4),
            "output_tokens_per_s": round(1e3 / max(statistics.median(per_token), 1e-9), 1)}
