"""Speculative decoding: a cheap drafter proposes gamma tokens, the target checks them all in ONE forward pass.

Lossless by construction (Leviathan et al. 2023; Chen et al. 2023):

- greedy (temperature 0): keep drafted tokens while they equal the target's argmax, then append the target's
  own token, so the output is token for token the target's greedy decoding;
- sampling: keep drafted token x with probability min(1, p(x)/q(x)); at the first rejection sample from
  norm(max(0, p - q)), so the output follows the target's distribution p exactly.

Each round costs one target call and yields 1 to k+1 tokens. Rejected positions are cut from both KV caches
(``DynamicCache.crop``), so nothing is recomputed. Batch 1 only (loop over prompts for more).

The drafters (:class:`~workbench.decoding.drafters.ModelDrafter`, a small LM with the same tokenizer, and
:class:`~workbench.decoding.drafters.PromptLookupDrafter`, an n-gram copy from the context) live in
:mod:`workbench.decoding.drafters`; this module is the engine that runs any of them against the target.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from workbench.decoding.drafters import DRAFTERS, ModelDrafter
from workbench.decoding.lm import check_prompt, new_cache


@dataclass(frozen=True)
class SpecConfig:
    """One speculative-decoding setting.

    Args:
        gamma: tokens the drafter proposes per round (>= 1).
        temperature: 0 = greedy (token-identical to the target); > 0 = sampling from softmax(logits / T).
        drafter: "draft-model" (a small LM) or "prompt-lookup" (n-gram copy from the context).
        max_new_tokens: tokens to generate per prompt.
        max_ngram / min_ngram: n-gram sizes prompt lookup tries, longest first.

    Example:
        >>> SpecConfig.greedy(gamma=4)
        SpecConfig(gamma=4, temperature=0.0, drafter='draft-model', max_new_tokens=64, max_ngram=3, min_ngram=1)
    """

    gamma: int = 4
    temperature: float = 0.0
    drafter: str = "draft-model"
    max_new_tokens: int = 64
    max_ngram: int = 3
    min_ngram: int = 1

    def __post_init__(self):
        if not isinstance(self.gamma, int) or self.gamma < 1:
            raise ValueError(f"gamma={self.gamma!r}: the drafter must propose at least 1 token per round (use gamma >= 1)")
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature}: use 0 for greedy or a positive value for sampling")
        if self.drafter not in DRAFTERS:
            raise ValueError(f"drafter {self.drafter!r} unknown: use one of {DRAFTERS}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens}: generate at least 1 token")
        if not 1 <= self.min_ngram <= self.max_ngram:
            raise ValueError(f"n-gram sizes {self.min_ngram}..{self.max_ngram}: need 1 <= min_ngram <= max_ngram")

    @classmethod
    def greedy(cls, gamma: int = 4, **kw) -> "SpecConfig":
        return cls(gamma=gamma, temperature=0.0, **kw)

    @classmethod
    def sampling(cls, temperature: float = 1.0, gamma: int = 4, **kw) -> "SpecConfig":
        return cls(gamma=gamma, temperature=temperature, **kw)

    @classmethod
    def prompt_lookup(cls, gamma: int = 4, max_ngram: int = 3, **kw) -> "SpecConfig":
        return cls(gamma=gamma, drafter="prompt-lookup", max_ngram=max_ngram, **kw)


@dataclass
class SpecStats:
    """What one generation did. ``gamma`` 0 marks plain autoregressive decoding (no drafter)."""

    gamma: int
    new_tokens: int = 0
    target_calls: int = 0
    draft_calls: int = 0
    proposed: int = 0
    accepted: int = 0
    rejections: int = 0          # rounds that stopped at a rejected draft token (the rest accepted all k)
    accept_lengths: list = field(default_factory=list)   # drafted tokens kept, per round
    target_seconds: float = 0.0
    draft_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def alpha(self) -> float:
        """Per-token acceptance probability: accepted / (accepted + rejected), over the positions actually tested."""
        tested = self.accepted + self.rejections
        return self.accepted / tested if tested else float("nan")

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else float("nan")

    def merge(self, other: "SpecStats") -> "SpecStats":
        out = SpecStats(self.gamma, accept_lengths=self.accept_lengths + other.accept_lengths)
        for name in ("new_tokens", "target_calls", "draft_calls", "proposed", "accepted", "rejections",
                     "target_seconds", "draft_seconds", "seconds"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out


def verify(logits: torch.Tensor, draft: torch.Tensor, q, temperature: float, generator=None) -> tuple[int, torch.Tensor]:
    """(drafted tokens kept, the target's next token) from target logits [k+1, V] over the k drafted tokens."""
    k = len(draft)
    if temperature == 0:
        best = logits.argmax(-1)
        kept = int((draft == best[:k]).cumprod(0).sum()) if k else 0
        return kept, best[kept]
    p = torch.softmax(logits.float() / temperature, -1)
    if k == 0:
        return 0, torch.multinomial(p[0], 1, generator=generator)[0]
    if q is None:   # deterministic drafter: q is a point mass on each drafted token
        q = F.one_hot(draft, p.shape[-1]).to(p.dtype)
    rows = torch.arange(k)
    ratio = p[rows, draft] / q[rows, draft]
    kept = int((torch.rand(k, generator=generator) < ratio).cumprod(0).sum())   # P(u < r) = min(1, r)
    if kept == k:
        return k, torch.multinomial(p[k], 1, generator=generator)[0]
    residual = (p[kept] - q[kept]).clamp_min(0)
    residual = residual if residual.sum() > 0 else p[kept]
    return kept, torch.multinomial(residual / residual.sum(), 1, generator=generator)[0]


@torch.inference_mode()
def speculative_generate(target, drafter, input_ids, gamma: int = 4, temperature: float = 0.0,
                         max_new_tokens: int = 64, eos_token_id: int | None = None,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, SpecStats]:
    """Generate with speculative decoding; returns (prompt + new tokens [1, T], :class:`SpecStats`).

    Args:
        target: HF causal LM whose output is wanted.
        drafter: a :mod:`workbench.decoding.drafters` drafter (see :func:`~workbench.decoding.drafters.make_drafter`).
        gamma: tokens proposed per round; temperature: 0 = greedy, > 0 = sampling.
        eos_token_id: stop after this token (None: always generate ``max_new_tokens``).

    Example:
        >>> out, stats = speculative_generate(target, ModelDrafter(draft, target), ids, gamma=4)  # doctest: +SKIP
        >>> stats.alpha, stats.tokens_per_s
    """
    SpecConfig(gamma=gamma, temperature=temperature, max_new_tokens=max_new_tokens)   # validates
    prompt = check_prompt(target, input_ids, max_new_tokens)
    if isinstance(drafter, ModelDrafter):
        check_prompt(drafter.model, prompt, max_new_tokens)   # the draft's context may be shorter
    n, limit = len(prompt), len(prompt) + max_new_tokens
    seq = torch.empty(limit, dtype=torch.long)
    seq[:n] = prompt
    cache, n_cached, stats = new_cache(target), 0, SpecStats(gamma)
    drafter.reset()
    calls0, start = drafter.calls, time.perf_counter()
    while n < limit:
        t0 = time.perf_counter()
        k = min(gamma, limit - n - 1)       # the round adds up to k + 1 tokens
        draft, q = drafter.propose(seq, n, k, temperature, generator) if k else (seq[:0], None)
        t1 = time.perf_counter()
        # target sees what its cache lacks (the whole prompt in round 1) plus the drafts: [.., k+1 logits]
        logits = target(input_ids=torch.cat([seq[n_cached:n], draft])[None], past_key_values=cache,
                        use_cache=True).logits[0, -len(draft) - 1:]
        kept, token = verify(logits, draft, q, temperature, generator)
        t2 = time.perf_counter()
        seq[n:n + kept], seq[n + kept] = draft[:kept], token
        stats.proposed, stats.accepted, stats.rejections = stats.proposed + len(draft), stats.accepted + kept, \
            stats.rejections + (kept < len(draft))
        stats.accept_lengths.append(kept)
        stats.draft_seconds, stats.target_seconds = stats.draft_seconds + t1 - t0, stats.target_seconds + t2 - t1
        stats.target_calls += 1
        n_old, n = n, n + kept + 1
        n_cached = n - 1                    # the newest token is fed next round
        cache.crop(n_cached)
        drafter.rollback(n_cached)
        if eos_token_id is not None and (seq[n_old:n] == eos_token_id).any():
            n = n_old + int((seq[n_old:n] == eos_token_id).nonzero()[0]) + 1
            break
    stats.seconds, stats.new_tokens = time.perf_counter() - start, n - len(prompt)
    stats.draft_calls = drafter.calls - calls0
    return seq[:n][None], stats


@torch.inference_mode()
def autoregressive_generate(model, input_ids, max_new_tokens: int = 64, use_cache: bool = True,
                            temperature: float = 0.0, eos_token_id: int | None = None,
                            generator: torch.Generator | None = None) -> tuple[torch.Tensor, SpecStats]:
    """The target alone, one token per forward call: the baseline speculative decoding must beat.

    ``use_cache=False`` re-runs the whole sequence every step (the KV cache on/off comparison).

    Example:
        >>> out, stats = autoregressive_generate(target, ids, max_new_tokens=64)   # doctest: +SKIP
    """
    prompt = check_prompt(model, input_ids, max_new_tokens)
    n, limit = len(prompt), len(prompt) + max_new_tokens
    seq = torch.empty(limit, dtype=torch.long)
    seq[:n] = prompt
    cache, n_cached, stats = (new_cache(model) if use_cache else None), 0, SpecStats(0)
    start = time.perf_counter()
    while n < limit:
        if use_cache:
            logits = model(input_ids=seq[n_cached:n][None], past_key_values=cache, use_cache=True).logits[0, -1]
            n_cached = n
        else:
            logits = model(input_ids=seq[:n][None], use_cache=False).logits[0, -1]
        _, seq[n] = verify(logits[None], seq[:0], None, temperature, generator)
        n, stats.target_calls = n + 1, stats.target_calls + 1
        if eos_token_id is not None and int(seq[n - 1]) == eos_token_id:
            break
    stats.seconds = stats.target_seconds = time.perf_counter() - start
    stats.new_tokens = n - len(prompt)
    return seq[:n][None], stats


__all__ = ["SpecConfig", "SpecStats", "verify", "speculative_generate", "autoregressive_generate"]
