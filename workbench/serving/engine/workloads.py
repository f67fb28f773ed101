"""Named workloads of the engine load: what the requests look like, because what they cost depends on it.

A served token's price depends on the shape of the traffic: prefill is compute-bound and cheap per token (many tokens
per step), decode is memory-bound and dear (one token per sequence per step). So the engine load names the shapes a
serving team prices separately:

- ``chat``: 128 prompt tokens, 32 answer tokens (the default of ``workbench load`` on an engine bundle);
- ``long-prompt``: a long prompt and a short answer (retrieval, classification, summarising: 448 in / 16 out);
- ``long-answer``: the reverse (generation from a short instruction: 32 in / 256 out);
- ``shared-prefix``: a long system prompt every request shares (400 of 448 tokens, 89%) and a distinct user part;
  with prefix caching on, the shared part's KV blocks are computed once. vLLM caches whole blocks only (128 tokens
  on its CPU backend unless ``block_size`` says otherwise), so the shared part must cover whole blocks to count:
  400 tokens hold 3 full blocks of 128 even when the text's join moves a token boundary.

Every shape fits the default ``max_model_len`` (512). Prompts are random token ids decoded to text (seeded), so
AIPerf and the own client send the very same strings; their token counts are re-measured with the tokenizer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workload:
    """One request shape: prompt and answer tokens, and how many prompt tokens every request shares."""

    name: str
    prompt_tokens: int
    new_tokens: int
    shared_prefix_tokens: int = 0

    def __post_init__(self):
        if self.prompt_tokens < 1 or self.new_tokens < 2:
            raise ValueError(f"workload {self.name!r}: prompt tokens ({self.prompt_tokens}) >= 1 and new tokens "
                             f"({self.new_tokens}) >= 2 (ITL needs two) are needed")
        if not 0 <= self.shared_prefix_tokens < self.prompt_tokens:
            raise ValueError(f"workload {self.name!r}: shared prefix ({self.shared_prefix_tokens}) must be >= 0 and "
                             f"shorter than the prompt ({self.prompt_tokens} tokens)")

    def prompts(self, tokenizer_dir: Path, n: int, seed: int = 0) -> tuple[list[str], list[int]]:
        return make_prompts(tokenizer_dir, n, self.prompt_tokens, self.shared_prefix_tokens, seed)

    def columns(self) -> dict:
        """What every row measured under this workload carries."""
        return {"workload": self.name, "workload_prompt_tokens": self.prompt_tokens,
                "workload_new_tokens": self.new_tokens, "shared_prefix_tokens": self.shared_prefix_tokens}

    def without_prefix(self) -> "Workload":
        """The same shape with every prompt distinct (the prefix-cache trial's reference)."""
        return Workload(f"{self.name}-distinct", self.prompt_tokens, self.new_tokens, 0)


WORKLOADS = {w.name: w for w in (Workload("chat", 128, 32), Workload("long-prompt", 448, 16),
                                 Workload("long-answer", 32, 256), Workload("shared-prefix", 448, 16, 400))}
COST_WORKLOADS = ("long-prompt", "long-answer")


def get_workload(name: str) -> Workload:
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}: use one of {', '.join(WORKLOADS)}")
    return WORKLOADS[name]


def _text(tok, rng, allowed, n: int) -> str:
    """Text of about ``n`` tokens from random ids: decoding random ids and encoding the text again gives ~10% more
    tokens (byte-level merges differ), so the ids are cut to ``n`` and re-decoded until the text encodes to <= n."""
    ids = rng.choice(allowed, n).tolist()
    text = tok.decode(ids)
    for _ in range(6):
        enc = tok(text, add_special_tokens=False)["input_ids"]
        if len(enc) <= n:
            break
        text = tok.decode(enc[:n])
    return text


def make_prompts(tokenizer_dir: Path, n: int, prompt_tokens: int, shared_prefix_tokens: int = 0,
                 seed: int = 0) -> tuple[list[str], list[int]]:
    """``n`` prompts of about ``prompt_tokens`` tokens each (random token ids decoded to text, seeded), the first
    ``shared_prefix_tokens`` the same for all (a shared system prompt) and the rest distinct. Returns the texts and
    their token counts re-measured with the tokenizer (the join of the two parts may move a boundary by a token)."""
    import numpy as np
    from transformers import AutoTokenizer

    if not 0 <= shared_prefix_tokens < prompt_tokens:
        raise ValueError(f"shared prefix ({shared_prefix_tokens}) must be >= 0 and shorter than the prompt "
                         f"({prompt_tokens} tokens)")
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    rng = np.random.default_rng(seed)
    vocab = min(len(tok), 4096)
    special = set(tok.all_special_ids)
    allowed = np.array([i for i in range(vocab) if i not in special])
    prefix = _text(tok, rng, allowed, shared_prefix_tokens) if shared_prefix_tokens else ""
    texts = [prefix + _text(tok, rng, allowed, prompt_tokens - shared_prefix_tokens) for _ in range(n)]
    return texts, [len(tok(t)["input_ids"]) for t in texts]


__all__ = ["Workload", "WORKLOADS", "COST_WORKLOADS", "get_workload", "make_prompts"]
