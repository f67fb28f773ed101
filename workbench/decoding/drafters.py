"""Drafters for speculative decoding: what proposes the next k tokens for the target to check in one call.

:class:`ModelDrafter` runs a small LM with the target's tokenizer; :class:`PromptLookupDrafter` copies what
followed the latest n-gram's earlier occurrence in the context (no model). Both keep the engine's interface:
``reset()``, ``prefill(seq, n)`` (take in ``seq[:n]`` before decoding starts; timed apart from decoding, optional
for custom drafters), ``propose(seq, n, k, temperature, generator) -> (tokens, q or None)`` (at most k tokens, on
``seq``'s device; prompt lookup often proposes fewer, or none), ``rollback(n_valid)`` and a ``calls`` counter (decode
calls only: one per drafted token for a model, one per round for prompt lookup). :func:`make_drafter` builds the one
a :class:`~workbench.decoding.speculative.SpecConfig` names.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from workbench.decoding.lm import model_device, new_cache, prefill, vocab_size

if TYPE_CHECKING:
    from workbench.decoding.speculative import SpecConfig

DRAFTERS = ("draft-model", "prompt-lookup")


class ModelDrafter:
    """A small LM with the target's tokenizer proposes k tokens, one cached forward call each.

    Its cache always holds a prefix of the sequence; ``prefill`` fills it with the prompt (all but its last token),
    ``rollback`` cuts it back to the accepted part, and the next ``propose`` feeds whatever the cache lacks (1 token,
    or 2 after a fully accepted round). ``lean=False`` keeps the plain HF forward even for GPT-2 drafts.
    """

    def __init__(self, model, target=None, lean: bool = True):
        from workbench.decoding import lean_gpt2

        self.model = model.eval()
        if target is not None and vocab_size(model) != vocab_size(target):
            raise ValueError(f"draft vocabulary ({vocab_size(model)} tokens) differs from the target's "
                             f"({vocab_size(target)}): use a draft trained with the same tokenizer, "
                             "or drafter='prompt-lookup'")
        if target is not None and model_device(model) != model_device(target):
            raise ValueError(f"draft is on {model_device(model)}, target on {model_device(target)}: move the draft "
                             f"with draft.to('{model_device(target)}')")
        # GPT-2 drafts run on a lean forward (same weights, no per-call framework overhead): lower c
        self.lean = lean_gpt2.LeanGPT2(model) if lean and lean_gpt2.supports(model) else None
        self.cache, self.n_cached, self.calls = None, 0, 0

    def reset(self) -> None:
        self.n_cached = 0
        if self.lean is not None:
            self.lean.reset()
        else:
            self.cache = new_cache(self.model)

    @property
    def forward_kind(self) -> str:
        """Which draft forward runs: "lean-gpt2" (:mod:`workbench.decoding.lean_gpt2`) or "hf" (the model's own)."""
        return "lean-gpt2" if self.lean is not None else "hf"

    def _last_logits(self, feed: torch.Tensor) -> torch.Tensor:
        if self.lean is not None:
            return self.lean.step(feed)
        return self.model(input_ids=feed[None], past_key_values=self.cache, use_cache=True).logits[0, -1]

    def prefill(self, seq: torch.Tensor, n: int) -> None:
        """Take ``seq[:n]`` into the cache in one call (not counted in ``calls``: decode calls only)."""
        if n <= self.n_cached:
            return
        if self.lean is not None:
            self.lean.step(seq[self.n_cached:n])
        else:
            prefill(self.model, seq[self.n_cached:n], self.cache)
        self.n_cached = n

    def propose(self, seq: torch.Tensor, n: int, k: int, temperature: float, generator=None):
        """k drafted tokens after ``seq[:n]`` (on ``seq``'s device) and their draft probabilities q [k, V] (None when
        greedy). Nothing leaves the device: tokens are picked where the logits are."""
        tokens, qs = torch.empty(k, dtype=torch.long, device=seq.device), []
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

    def prefill(self, seq: torch.Tensor, n: int) -> None:
        pass   # no model: nothing to take in

    def propose(self, seq: torch.Tensor, n: int, k: int, temperature: float = 0.0, generator=None):
        """Up to k tokens copied from the context (fewer, or none, when the match is near the end or absent)."""
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


def make_drafter(config: "SpecConfig", draft_model=None, target=None, lean: bool = True):
    """The drafter ``config.drafter`` names; "draft-model" needs ``draft_model`` (checked against ``target``)."""
    if config.drafter == "prompt-lookup":
        return PromptLookupDrafter(config.max_ngram, config.min_ngram)
    if draft_model is None:
        raise ValueError("drafter 'draft-model' needs a draft model (task.load_draft()); or use drafter='prompt-lookup'")
    return ModelDrafter(draft_model, target, lean=lean)


__all__ = ["DRAFTERS", "ModelDrafter", "PromptLookupDrafter", "make_drafter"]
