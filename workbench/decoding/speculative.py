"""Speculative decoding: a cheap drafter proposes gamma tokens, the target checks them all in ONE forward pass.

Lossless by construction (Leviathan et al. 2023; Chen et al. 2023):

- greedy (temperature 0): keep drafted tokens while they equal the target's argmax, then append the target's
  own token, so the output is token for token the target's greedy decoding;
- sampling: keep drafted token x with probability min(1, p(x)/q(x)); at the first rejection sample from
  norm(max(0, p - q)), so the output follows the target's distribution p exactly.

Each round costs one target call and yields 1 to k+1 tokens. Rejected positions are cut from both KV caches
(``DynamicCache.crop``), so nothing is recomputed. Batch 1 only (loop over prompts for more).

Drafters: :class:`ModelDrafter` (a small LM with the same tokenizer) and :class:`PromptLookupDrafter`
(copy what followed the latest n-gram's earlier occurrence in the context; no model).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

DRAFTERS = ("draft-model", "prompt-lookup")


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


def context_length(model) -> int | None:
    cfg = model.config
    return getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None)


def vocab_size(model) -> int:
    return model.get_output_embeddings().weight.shape[0]


def check_prompt(model, input_ids, max_new_tokens: int) -> torch.Tensor:
    """The prompt as a 1-D LongTensor, with clear errors for batches, empty prompts and context overflow."""
    ids = torch.as_tensor(input_ids)
    if ids.dim() == 2:
        if ids.shape[0] != 1:
            raise ValueError(f"input_ids has batch size {ids.shape[0]}: this engine decodes one prompt at a time "
                             "(batch 1); loop over the prompts")
        ids = ids[0]
    if ids.dim() != 1 or ids.numel() == 0 or ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"input_ids must be non-empty integer token ids [1, T], got {tuple(ids.shape)} {ids.dtype}")
    ctx = context_length(model)
    if ctx is not None and ids.numel() + max_new_tokens > ctx:
        raise ValueError(f"prompt ({ids.numel()} tokens) + max_new_tokens ({max_new_tokens}) = "
                         f"{ids.numel() + max_new_tokens} exceeds the model's context of {ctx} tokens: shorten the "
                         f"prompt (keep its last {max(ctx - max_new_tokens, 0)} tokens) or lower max_new_tokens")
    if int(ids.max()) >= vocab_size(model) or int(ids.min()) < 0:
        raise ValueError(f"input_ids hold token ids outside the model's vocabulary (0..{vocab_size(model) - 1}): "
                         "tokenize with the model's own tokenizer")
    return ids.long()


def new_cache(model):
    """An empty KV cache; ``DynamicCache(config=...)`` works on transformers 4.57 and 5.x alike."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


class ModelDrafter:
    """A small LM with the target's tokenizer proposes k tokens, one cached forward call each.

    Its cache always holds a prefix of the sequence; ``rollback`` cuts it back to the accepted part, and
    the next ``propose`` feeds whatever the cache lacks (1 token, or 2 after a fully accepted round).
    """

    def __init__(self, model, target=None, lean: bool = True):
        from workbench.decoding import lean_gpt2

        self.model = model.eval()
        if target is not None and vocab_size(model) != vocab_size(target):
            raise ValueError(f"draft vocabulary ({vocab_size(model)} tokens) differs from the target's "
                             f"({vocab_size(target)}): use a draft trained with the same tokenizer, "
                             "or drafter='prompt-lookup'")
        # GPT-2 drafts run on a lean forward (same weights, no per-call framework overhead): lower c
        self.lean = lean_gpt2.LeanGPT2(model) if lean and lean_gpt2.supports(model) else None
        self.cache, self.n_cached, self.calls = None, 0, 0

    def reset(self) -> None:
        self.n_cached = 0
        if self.lean is not None:
            self.lean.reset()
        else:
            self.cache = new_cache(self.model)

    def _last_logits(self, feed: torch.Tensor) -> torch.Tensor:
        if self.lean is not None:
            return self.lean.step(feed)
        return self.model(input_ids=feed[None], past_key_values=self.cache, use_cache=True).logits[0, -1]

    def propose(self, seq: torch.Tensor, n: int, k: int, temperature: float, generator=None):
        """k drafted tokens after ``seq[:n]`` and their draft probabilities q [k, V] (None when greedy)."""
        tokens, qs = torch.empty(k, dtype=torch.long), []
        feed = seq[self.n_cached:n]
        for i in range(k):
            logits = self._last_logits(feed)
            if temperature == 0:
                tokens[i] = logits.argmax()
            else:
                q = torch.softmax(logits.float() / temperature, -1)
                tokens[i] = torch.multinomial(q, 1, generator=generator)[0]
                qs.append(q)
            feed = tokens[i:i + 1]
        self.n_cached, self.calls = n + k - 1, self.calls + k   # the last drafted token is not in the cache yet
        return tokens, (torch.stack(qs) if qs else None)

    def rollback(self, n_valid: int) -> None:
        if self.n_cached > n_valid:
            (self.lean or self.cache).crop(n_valid)
            self.n_cached = n_valid


class PromptLookupDrafter:
    """Proposes the tokens that followed the most recent earlier occurrence of the context's last n-gram."""

    def __init__(self, max_ngram: int = 3, min_ngram: int = 1):
        self.max_ngram, self.min_ngram, self.calls = max_ngram, min_ngram, 0

    def reset(self) -> None:
        pass

    def propose(self, seq: torch.Tensor, n: int, k: int, temperature: float = 0.0, generator=None):
        self.calls += 1
        for size in range(min(self.max_ngram, n - 1), self.min_ngram - 1, -1):
            # windows starting at 0..n-1-size: each ends before the last token, so a continuation exists
            windows = seq[:n - 1].unfold(0, size, 1)
            hits = (windows == seq[n - size:n]).all(1).nonzero()
            if len(hits):
                start = int(hits[-1]) + size
                return seq[start:min(start + k, n)].clone(), None   # q = point mass on the copied tokens
        return seq[:0].clone(), None

    def rollback(self, n_valid: int) -> None:
        pass


def make_drafter(config: SpecConfig, draft_model=None, target=None):
    if config.drafter == "prompt-lookup":
        return PromptLookupDrafter(config.max_ngram, config.min_ngram)
    if draft_model is None:
        raise ValueError("drafter 'draft-model' needs a draft model (task.load_draft()); or use drafter='prompt-lookup'")
    return ModelDrafter(draft_model, target)


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
        drafter: :class:`ModelDrafter` or :class:`PromptLookupDrafter` (see :func:`make_drafter`).
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
