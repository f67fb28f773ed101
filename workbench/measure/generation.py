"""Generation scenario: plain decoding (KV cache on/off) and speculative decoding sweeps (gamma, temperature, drafter).

Arms run interleaved prompt by prompt in one process, so a shared CPU's drift hits every arm alike. Each
speculative row carries the measured acceptance rate alpha, the acceptance-length histogram, the draft/target
cost ratio c (draft call time / target step time, both measured here), the measured speedup over the target
alone, and the speedup the standard model predicts from alpha, gamma and c (Leviathan et al. 2023):
``(1 - alpha^(gamma+1)) / ((1 - alpha) (gamma c + 1))``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from workbench.decoding.drafters import DRAFTERS, make_drafter
from workbench.decoding.speculative import SpecStats, autoregressive_generate, speculative_generate, SpecConfig


def predicted_speedup(alpha: float, gamma: int, c: float, verify_cost: float = 1.0) -> float:
    """Expected tokens per round over the round's cost in target steps (one verify + gamma draft calls).

    ``verify_cost`` 1 is the textbook model (checking gamma+1 tokens costs one step, true when memory-bound);
    pass the measured verify/step ratio to see how much of a gap that assumption explains on a CPU.
    """
    tokens = gamma + 1 if alpha >= 1 else (1 - alpha ** (gamma + 1)) / (1 - alpha)
    return tokens / (gamma * c + verify_cost)


def break_even_alpha(gamma: int, c: float) -> float:
    """Smallest alpha at which speculation stops losing (predicted speedup 1); nan if none (c >= 1)."""
    if predicted_speedup(1.0, gamma, c) < 1:
        return float("nan")
    low, high = 0.0, 1.0
    for _ in range(40):   # predicted_speedup rises with alpha: bisect
        mid = (low + high) / 2
        low, high = (mid, high) if predicted_speedup(mid, gamma, c) < 1 else (low, mid)
    return high


@dataclass(frozen=True)
class GenerationTrial:
    """What the generation scenario sweeps.

    Args:
        gammas: draft lengths to try (each >= 1).
        temperatures: 0 = greedy (output checked against the target's own), > 0 = sampling.
        drafters: any of "draft-model", "prompt-lookup".
        n_prompts / prompt_tokens: held-out prompts from ``task.prompts``.
        max_new_tokens: generated per prompt (no EOS stop, so every arm does the same work).
        kv_cache_off: also time plain decoding without the KV cache (slow: quadratic).

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
        for t in self.temperatures:
            SpecConfig(temperature=t)
        bad = [d for d in self.drafters if d not in DRAFTERS]
        if bad or not self.drafters:
            raise ValueError(f"drafters {bad or '()'}: use some of {DRAFTERS}")
        if self.n_prompts < 1 or self.prompt_tokens < 1 or self.max_new_tokens < 1:
            raise ValueError("n_prompts, prompt_tokens and max_new_tokens must be >= 1")

    @classmethod
    def quick(cls) -> "GenerationTrial":
        """A minute-scale sweep for notebooks and CI."""
        return cls(gammas=(1, 2, 4), n_prompts=3, max_new_tokens=32, kv_cache_off=False)

    @classmethod
    def full(cls) -> "GenerationTrial":
        return cls(temperatures=(0.0, 0.7, 1.0), n_prompts=12, max_new_tokens=96)


def spec_row(stats: SpecStats, base: SpecStats, greedy_match: bool | None) -> dict:
    """Figures of one speculative arm summed over prompts, against the target alone (``base``)."""
    gamma = stats.gamma
    step_s = base.target_seconds / base.target_calls
    c = stats.draft_seconds / max(stats.draft_calls, 1) / step_s
    alpha = stats.alpha
    verify = stats.target_seconds / stats.target_calls / step_s   # one verify call, in target steps
    predicted = predicted_speedup(alpha, gamma, c) if not math.isnan(alpha) else float("nan")
    speedup = stats.tokens_per_s / base.tokens_per_s
    # NaN (no draft ever tested) is not JSON: store None
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in {"tokens_per_s": round(stats.tokens_per_s, 2), "target_tokens_per_s": round(base.tokens_per_s, 2),
            "speedup": round(speedup, 4), "alpha": round(alpha, 4),
            "acceptance_rate": round(stats.accepted / max(stats.proposed, 1), 4),
            "accept_hist": np.bincount(stats.accept_lengths, minlength=gamma + 1).tolist(),
            "mean_accepted_per_call": round(stats.accepted / stats.target_calls, 4),
            "tokens_per_target_call": round(stats.new_tokens / stats.target_calls, 4),
            "c": round(c, 4), "verify_cost_steps": round(verify, 4),
            "predicted_speedup": round(predicted, 4), "measured_over_predicted": round(speedup / predicted, 4),
            "predicted_with_verify_cost": round(predicted_speedup(alpha, gamma, c, verify), 4),
            "break_even_alpha": round(break_even_alpha(gamma, c), 4),
            "new_tokens": stats.new_tokens, "target_calls": stats.target_calls, "identical": greedy_match}.items()}


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


def measure_generation(task, trial: GenerationTrial | None = None, target=None, draft=None, table=None,
                       threads: int | None = None, progress: bool = True) -> list[dict]:
    """Run the generation scenario on ``task``'s held-out prompts; return (and append to ``table``) one row per arm.

    Args:
        task: a causal-LM task (``task.prompts``, ``task.load_model``, ``task.load_draft``).
        trial: what to sweep (default :class:`GenerationTrial`).
        target / draft: models to use instead of the task's own (e.g. a distilled student as draft).
        table: a :class:`~workbench.results.ResultsTable`; rows are appended as they are measured.
        threads: intra-op threads for every arm.

    Example:
        >>> table = ResultsTable.for_study("speculative")                          # doctest: +SKIP
        >>> measure_generation(task, GenerationTrial.quick(), table=table)
    """
    from workbench.measure.timing import pin_threads

    trial = trial or GenerationTrial()
    if not getattr(task, "generates_text", False):
        raise ValueError(f"generation needs a causal-lm task, got {getattr(task, 'kind', type(task).__name__)!r}")
    used_threads = pin_threads(threads)
    base_variant = task.baseline("cpu") if target is None else None
    target = target if target is not None else base_variant.model
    if "draft-model" in trial.drafters and draft is None:
        draft = task.load_draft()
    prompts = task.prompts(trial.n_prompts, trial.prompt_tokens)
    arms = [("plain", None, t, True) for t in trial.temperatures]
    arms += [("spec", d, t, g) for t in trial.temperatures for d in trial.drafters for g in trial.gammas]
    if trial.kv_cache_off:
        arms.append(("plain", None, 0.0, False))
    drafters = {d: make_drafter(SpecConfig(drafter=d), draft, target) for d in trial.drafters}

    def run(arm, ids, seed):
        mode, drafter, temp, gamma_or_cache = arm
        gen = torch.Generator().manual_seed(seed)
        if mode == "plain":
            return autoregressive_generate(target, ids, trial.max_new_tokens, use_cache=gamma_or_cache,
                                           temperature=temp, generator=gen)
        return speculative_generate(target, drafters[drafter], ids, gamma_or_cache, temp, trial.max_new_tokens,
                                    generator=gen)

    for arm in arms:   # warm-up: first calls allocate, fill caches and pick kernels
        run(arm, prompts[0], trial.seed)
    stats, outputs = _run_interleaved(arms, run, prompts, trial.seed, progress)

    common = {"task": task.name, "batch_size": 1, "seq_len": trial.prompt_tokens, "max_new_tokens": trial.max_new_tokens,
              "n_prompts": len(prompts), "threads": used_threads}
    if base_variant is not None:
        common.update(base_variant.describe())
    rows = []
    for arm in arms:
        mode, drafter, temp, g = arm
        s = stats[arm]
        if mode == "plain":
            row = {**common, "variant": f"target kv-cache {'on' if g else 'off'}", "scenario": "generation-plain",
                   "kv_cache": g, "temperature": temp, "tokens_per_s": round(s.tokens_per_s, 2),
                   "new_tokens": s.new_tokens, "target_calls": s.target_calls,
                   "speedup": round(s.tokens_per_s / stats[("plain", None, temp, True)].tokens_per_s, 4)}
        else:
            base_arm = ("plain", None, temp, True)
            same = all(torch.equal(a, b) for a, b in zip(outputs[arm], outputs[base_arm])) if temp == 0 else None
            row = {**common, "variant": f"speculative {drafter} gamma={g}", "scenario": "generation-speculative",
                   "drafter": drafter, "gamma": g, "temperature": temp, **spec_row(s, stats[base_arm], same)}
        rows.append(table.append(row) if table is not None else row)
    return rows
