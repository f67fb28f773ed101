"""Speculative decoding: a cheap drafter proposes gamma tokens, the target checks them all in ONE forward pass.

Lossless by construction (Leviathan et al. 2023; Chen et al. 2023):

- greedy (temperature 0): keep drafted tokens while they equal the target's argmax, then append the target's
  own token, so the output is token for token the target's greedy decoding;
- sampling: keep drafted token x with probability min(1, p(x)/q(x)); at the first rejection sample from
  norm(max(0, p - q)), so the output follows the target's distribution p exactly.

Each round costs one target call and yields 1 to k+1 tokens. Rejected positions are cut from both KV caches
(``DynamicCache.crop``), so nothing is recomputed. Batch 1 only (loop over prompts for more).

Prefill is apart from decoding, and timed apart: the prompt, all but its last token, goes into the target's cache
(and the draft's) in one call each; every decode call after that feeds 1 new token (plus the drafts), so decode
costs per call are alike and exclude the prompt. Everything runs on the target's device: the sequence, the drafts and
the verification stay there, and only token ids and counts (how many drafts were kept, EOS checks) reach the host.
On CUDA each phase's timer waits for the queued kernels (:func:`~workbench.decoding.lm.clock`).

The drafters (:class:`~workbench.decoding.drafters.ModelDrafter`, a small LM with the same tokenizer, and
:class:`~workbench.decoding.drafters.PromptLookupDrafter`, an n-gram copy from the context) live in
:mod:`workbench.decoding.drafters`; this module is the engine that runs any of them against the target.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from workbench.decoding.drafters import DRAFTERS, ModelDrafter
from workbench.decoding.lm import check_prompt, clock, last_logits_only, model_device, new_cache, prefill


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
    """What one generation (or several, merged) did. ``gamma`` 0 marks plain autoregressive decoding (no drafter).

    Calls and times count decoding only, prefill apart: ``target_calls`` / ``draft_calls`` are decode calls,
    ``target_seconds`` / ``draft_seconds`` the time in them (the verify calls; the drafter's proposals), and
    ``decode_seconds`` the whole decode loop (wall time, bookkeeping included). The prompt's prefill is
    ``target_prefill_seconds`` and ``draft_prefill_seconds``; ``seconds`` is end to end (prefill + decode).
    """

    gamma: int
    new_tokens: int = 0
    target_calls: int = 0
    draft_calls: int = 0
    proposed: int = 0
    accepted: int = 0
    rejections: int = 0          # rounds that stopped at a rejected draft token (the rest accepted all k)
    accept_lengths: list = field(default_factory=list)     # drafted tokens kept, per round
    proposal_lengths: list = field(default_factory=list)   # drafted tokens proposed, per round (prompt lookup: 0..k)
    target_seconds: float = 0.0
    draft_seconds: float = 0.0
    decode_seconds: float = 0.0
    target_prefill_seconds: float = 0.0
    draft_prefill_seconds: float = 0.0
    seconds: float = 0.0
    generations: int = 1         # prompts generated (merged stats add up)
    # per prompt: (start, emit_times, emit_counts) for :func:`workbench.measure.request_metrics.request_metrics`
    requests: list = field(default_factory=list)

    @property
    def alpha(self) -> float:
        """Per-token acceptance probability: accepted / (accepted + rejected), over the positions actually tested."""
        tested = self.accepted + self.rejections
        return self.accepted / tested if tested else float("nan")

    @property
    def prefill_seconds(self) -> float:
        """The prompt's prefill, target and draft together."""
        return self.target_prefill_seconds + self.draft_prefill_seconds

    @property
    def tokens_per_s(self) -> float:
        """New tokens over decode time (prefill excluded); nan when the decode time is not positive."""
        return self.new_tokens / self.decode_seconds if self.decode_seconds > 0 else float("nan")

    @property
    def e2e_tokens_per_s(self) -> float:
        """New tokens over the end-to-end time (prefill + decode); nan when that time is not positive."""
        return self.new_tokens / self.seconds if self.seconds > 0 else float("nan")

    def merge(self, other: "SpecStats") -> "SpecStats":
        out = SpecStats(self.gamma, accept_lengths=self.accept_lengths + other.accept_lengths,
                        proposal_lengths=self.proposal_lengths + other.proposal_lengths,
                        requests=self.requests + other.requests)
        for name in ("new_tokens", "target_calls", "draft_calls", "proposed", "accepted", "rejections",
                     "target_seconds", "draft_seconds", "decode_seconds", "target_prefill_seconds",
                     "draft_prefill_seconds", "seconds", "generations"):
            setattr(out, name, getattr(self, name) + getattr(other, name))
        return out


def verify(logits: torch.Tensor, draft: torch.Tensor, q, temperature: float, generator=None) -> tuple[int, torch.Tensor]:
    """(drafted tokens kept, the target's next token) from target logits [k+1, V] over the k drafted tokens.

    Runs where the logits are; only the count of kept drafts reaches the host (the token stays a device tensor).
    ``generator`` must live on the logits' device.
    """
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
    rows = torch.arange(k, device=p.device)
    ratio = p[rows, draft] / q[rows, draft]
    u = torch.rand(k, generator=generator, device=p.device)
    kept = int((u < ratio).cumprod(0).sum())   # P(u < r) = min(1, r)
    if kept == k:
        return k, torch.multinomial(p[k], 1, generator=generator)[0]
    residual = (p[kept] - q[kept]).clamp_min(0)
    residual = torch.where(residual.sum() > 0, residual, p[kept])   # chosen on the device: no host round trip
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
        generator: for sampling; on the target's device.

    The prompt's prefill (target and draft, one call each) is timed apart from the decode rounds
    (:class:`SpecStats`); the output is on the target's device.

    Example:
        >>> out, stats = speculative_generate(target, ModelDrafter(draft, target), ids, gamma=4)  # doctest: +SKIP
        >>> stats.alpha, stats.tokens_per_s
    """
    SpecConfig(gamma=gamma, temperature=temperature, max_new_tokens=max_new_tokens)   # validates
    prompt = check_prompt(target, input_ids, max_new_tokens)
    if isinstance(drafter, ModelDrafter):
        check_prompt(drafter.model, prompt, max_new_tokens)   # the draft's context may be shorter
    device = model_device(target)
    n, limit = len(prompt), len(prompt) + max_new_tokens
    seq = torch.empty(limit, dtype=torch.long, device=device)
    seq[:n] = prompt
    cache, n_cached, stats = new_cache(target), 0, SpecStats(gamma)
    drafter.reset()
    start = clock(device)
    if n > 1:   # prefill: all but the last prompt token, so every decode round feeds 1 token (+ drafts) alike
        prefill(target, seq[:n - 1], cache)
        n_cached = n - 1
    t_target = clock(device)
    if hasattr(drafter, "prefill"):
        drafter.prefill(seq, n - 1)
    decode_start = clock(device)
    stats.target_prefill_seconds, stats.draft_prefill_seconds = t_target - start, decode_start - t_target
    calls_prefill = drafter.calls          # a custom drafter may count its prefill: decode calls are the rest
    emit_times, emit_counts = [], []       # a round emits its kept drafts + 1 token at once: one chunk
    while n < limit:
        t0 = clock(device)
        k = min(gamma, limit - n - 1)       # the round adds up to k + 1 tokens
        draft, q = drafter.propose(seq, n, k, temperature, generator) if k else (seq[:0], None)
        t1 = clock(device)
        # target sees what its cache lacks (the newest token) plus the drafts: [k+1 logits]
        logits = target(input_ids=torch.cat([seq[n_cached:n], draft])[None], past_key_values=cache,
                        use_cache=True).logits[0, -len(draft) - 1:]
        kept, token = verify(logits, draft, q, temperature, generator)
        t2 = clock(device)
        seq[n:n + kept], seq[n + kept] = draft[:kept], token
        stats.proposed, stats.accepted, stats.rejections = stats.proposed + len(draft), stats.accepted + kept, \
            stats.rejections + (kept < len(draft))
        stats.accept_lengths.append(kept)
        stats.proposal_lengths.append(len(draft))
        stats.draft_seconds, stats.target_seconds = stats.draft_seconds + t1 - t0, stats.target_seconds + t2 - t1
        stats.target_calls += 1
        emit_times.append(t2)
        emit_counts.append(kept + 1)
        n_old, n = n, n + kept + 1
        n_cached = n - 1                    # the newest token is fed next round
        cache.crop(n_cached)
        drafter.rollback(n_cached)
        if eos_token_id is not None and (seq[n_old:n] == eos_token_id).any():
            n = n_old + int((seq[n_old:n] == eos_token_id).nonzero()[0]) + 1
            emit_counts[-1] = n - n_old    # tokens after the EOS were never emitted
            break
    end = clock(device)
    stats.decode_seconds, stats.seconds, stats.new_tokens = end - decode_start, end - start, n - len(prompt)
    stats.requests = [(start, emit_times, emit_counts)]
    stats.draft_calls = drafter.calls - calls_prefill
    return seq[:n][None], stats


@torch.inference_mode()
def autoregressive_generate(model, input_ids, max_new_tokens: int = 64, use_cache: bool = True,
                            temperature: float = 0.0, eos_token_id: int | None = None,
                            generator: torch.Generator | None = None) -> tuple[torch.Tensor, SpecStats]:
    """The target alone, one token per forward call: the baseline speculative decoding must beat.

    With the cache, the prompt (all but its last token) is prefilled in one call, timed apart
    (``target_prefill_seconds``), and each decode step feeds 1 token. ``use_cache=False`` re-runs the whole sequence
    every step (the KV cache on/off comparison): there is no prefill, every step is a decode step, and only the last
    position's logits are made (as HF ``generate`` does), so the arm pays for attention and MLPs, not a wider head.

    Example:
        >>> out, stats = autoregressive_generate(target, ids, max_new_tokens=64)   # doctest: +SKIP
    """
    prompt = check_prompt(model, input_ids, max_new_tokens)
    device = model_device(model)
    n, limit = len(prompt), len(prompt) + max_new_tokens
    seq = torch.empty(limit, dtype=torch.long, device=device)
    seq[:n] = prompt
    cache, n_cached, stats = (new_cache(model) if use_cache else None), 0, SpecStats(0)
    keep = last_logits_only(model)
    start = clock(device)
    if use_cache and n > 1:
        prefill(model, seq[:n - 1], cache)
        n_cached = n - 1
    decode_start = clock(device)
    emit_times = []
    while n < limit:
        if use_cache:
            logits = model(input_ids=seq[n_cached:n][None], past_key_values=cache, use_cache=True).logits[0, -1]
            n_cached = n
        else:
            logits = model(input_ids=seq[:n][None], use_cache=False, **keep).logits[0, -1]
        _, seq[n] = verify(logits[None], seq[:0], None, temperature, generator)
        n, stats.target_calls = n + 1, stats.target_calls + 1
        emit_times.append(clock(device))   # the token exists (CUDA: synced), as a streaming server would send it
        if eos_token_id is not None and int(seq[n - 1]) == eos_token_id:
            break
    end = clock(device)
    stats.target_prefill_seconds = decode_start - start
    stats.decode_seconds = stats.target_seconds = end - decode_start
    stats.seconds, stats.new_tokens = end - start, n - len(prompt)
    stats.requests = [(start, emit_times, [1] * len(emit_times))]
    return seq[:n][None], stats


__all__ = ["SpecConfig", "SpecStats", "verify", "speculative_generate", "autoregressive_generate"]
