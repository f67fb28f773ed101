"""Prefix-caching trial: many requests share a long prefix (a system prompt) and differ in a short suffix.

Without reuse every request prefills prefix + suffix. With reuse the prefix's KV cache is computed once, copied per
request, and only the suffix is prefilled on top of it. Both arms run interleaved request by request (load drift
hits both alike); TTFT is the time from the request to its first token (copy of the cached prefix + suffix
prefill + argmax, or the full prefill + argmax). The trial checks that the reused path gives the same logits as the
full prefill (max |difference| over the suffix positions, within ``atol``) and fails loudly when it does not.

Prefill cost: prompt tokens computed per request (cached vs uncached) and the measured prompt tokens served per
second of prefill in each arm; :func:`workbench.measure.cost.prefix_cache_saving` turns those into $.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch


class PrefixMismatch(AssertionError):
    """Logits after a reused prefix differ from the full prefill past tolerance (a cache or position bug)."""


@dataclass(frozen=True)
class PrefixTrial:
    """What the trial runs.

    Args:
        prefix_len: shared prefix (system prompt) tokens; 512+ for the headline figure.
        suffix_len: distinct tokens per request.
        n_requests: requests (each a distinct suffix), timed in both arms.
        atol: largest allowed |logit difference| between the reused and the full prefill.
    """

    prefix_len: int = 512
    suffix_len: int = 16
    n_requests: int = 8
    atol: float = 1e-3
    seed: int = 0

    def __post_init__(self):
        if self.prefix_len < 1 or self.suffix_len < 1 or self.n_requests < 1:
            raise ValueError(f"prefix_len, suffix_len and n_requests must be >= 1, got {self.prefix_len}, "
                             f"{self.suffix_len}, {self.n_requests}")
        if self.atol <= 0:
            raise ValueError(f"atol must be > 0, got {self.atol}")

    @classmethod
    def small(cls) -> "PrefixTrial":
        return cls(prefix_len=64, suffix_len=8, n_requests=4)


def _prefill(model, ids: torch.Tensor, past=None):
    """(logits [B, T, V], cache) of one forward over ``ids`` after ``past`` (None: from position 0)."""
    out = model(input_ids=ids, past_key_values=past, use_cache=True)
    return out.logits, out.past_key_values


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return (time.perf_counter() - start) * 1e3, result


def prefix_cache_trial(model, trial: PrefixTrial = PrefixTrial(), vocab: int | None = None,
                       prompts: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Run both arms on ``model`` (a HF causal LM) and return the figures.

    Args:
        prompts: (prefix [1, P], suffixes [N, S]) token ids; default random ids from ``vocab`` (speed does not
            depend on which tokens).

    Returns:
        ``ttft_ms_full`` / ``ttft_ms_reused`` (p50 over requests), ``ttft_ratio`` (reused / full), the one-off
        ``prefix_prefill_ms``, prompt tokens computed per request in each arm, prompt tokens/s of prefill per arm,
        ``max_abs_logit_diff`` and ``n_requests``.
    """
    model = model.eval()
    if prompts is None:
        gen = torch.Generator().manual_seed(trial.seed)
        vocab = vocab or model.get_output_embeddings().weight.shape[0]
        prompts = (torch.randint(0, vocab, (1, trial.prefix_len), generator=gen),
                   torch.randint(0, vocab, (trial.n_requests, trial.suffix_len), generator=gen))
    prefix, suffixes = prompts
    device = next(model.parameters()).device
    prefix, suffixes = prefix.to(device), suffixes.to(device)
    full_ms, reused_ms, diffs = [], [], []
    with torch.inference_mode():
        _prefill(model, torch.cat([prefix, suffixes[:1]], 1))             # warm-up: allocation, kernel choice
        prefix_ms, (_logits, prefix_cache) = _timed(lambda: _prefill(model, prefix))
        for suffix in suffixes.split(1):
            ms, (full_logits, _) = _timed(lambda: _prefill(model, torch.cat([prefix, suffix], 1)))
            full_ms.append(ms)
            ms, (reused_logits, _) = _timed(lambda: _prefill(model, suffix, copy.deepcopy(prefix_cache)))
            reused_ms.append(ms)
            diffs.append(float((reused_logits - full_logits[:, -suffix.shape[1]:]).abs().max()))
    worst = max(diffs)
    if worst > trial.atol:
        raise PrefixMismatch(f"logits after the reused prefix differ from the full prefill by {worst:.2e} > "
                             f"atol {trial.atol}: the copied cache or the suffix positions are wrong")
    full, reused = float(np.median(full_ms)), float(np.median(reused_ms))
    prompt_tokens = trial.prefix_len + trial.suffix_len
    return {"prefix_len": trial.prefix_len, "suffix_len": trial.suffix_len, "n_requests": len(full_ms),
            "ttft_ms_full": round(full, 3), "ttft_ms_reused": round(reused, 3), "ttft_ratio": round(reused / full, 4),
            "prefix_prefill_ms": round(prefix_ms, 3),
            "prompt_tokens_computed_full": prompt_tokens, "prompt_tokens_computed_reused": trial.suffix_len,
            "prompt_tokens_per_s_full": round(prompt_tokens / full * 1e3, 1),
            "prompt_tokens_per_s_reused": round(prompt_tokens / reused * 1e3, 1),
            "cached_share": round(trial.prefix_len / prompt_tokens, 4), "max_abs_logit_diff": worst,
            "notes": "TTFT = the prefill forward that gives the first token's logits; "
                     "reused = deepcopy of the prefix KV + suffix prefill; "
                     "arms interleaved request by request; the prefix's one-off prefill is prefix_prefill_ms"}


__all__ = ["PrefixTrial", "PrefixMismatch", "prefix_cache_trial"]
