"""Causal language-model tasks: the built-in CPython-docs GPT-2 (+ draft) and any local HF causal LM."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from workbench.core import Variant
from workbench.util.stats import perplexity_with_ci
from workbench.tasks.base import QualityResult, Task
from workbench.tasks.hf_loading import load_hf_model, load_tokenizer

MODELS_DIR = Path(__file__).resolve().parent.parent / "assets" / "models"
DEMO_TARGET_DIR = MODELS_DIR / "pydoc-gpt2"
DEMO_DRAFT_DIR = MODELS_DIR / "pydoc-gpt2-draft"
LOGITS_BUDGET = 1 << 28  # logits per evaluation batch (1 GB in fp32)


def block_nll(logits: torch.Tensor, ids: torch.Tensor, chunk_elements: int = 1 << 24) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-block NLL sums and next-token hits. logits [B, T, V], ids [B, T] -> ([B], [B]) in fp32.

    Streams over sequence positions: each slice of ``chunk_elements`` logits (64 MB in fp32) is upcast, scored and
    dropped, so a 128k-vocabulary model in bf16 never holds an fp32 copy of the whole [B, T, V] tensor.
    """
    batch, steps, vocab = logits.shape[0], logits.shape[1] - 1, logits.shape[-1]
    span = max(1, chunk_elements // max(1, batch * vocab))
    nll = torch.zeros(batch, dtype=torch.float32, device=logits.device)
    hits = torch.zeros(batch, dtype=torch.float32, device=logits.device)
    for start in range(0, steps, span):
        part = logits[:, start:min(start + span, steps)].float()          # [B, t, V]
        target = ids[:, start + 1:start + 1 + part.shape[1]].to(logits.device)
        nll += F.cross_entropy(part.transpose(1, 2), target, reduction="none").sum(1)
        hits += (part.argmax(-1) == target).float().sum(1)
    return nll, hits


def lm_metrics(model: torch.nn.Module, blocks: torch.Tensor, batch_size: int = 16) -> dict:
    """Perplexity and next-token accuracy of a torch LM on token blocks [N, T] (training script)."""
    nll, hits = [], []
    with torch.inference_mode():
        for chunk in blocks.split(batch_size):
            n, h = block_nll(model(input_ids=chunk).logits, chunk)
            nll.append(n), hits.append(h)
    tokens = blocks.shape[0] * (blocks.shape[1] - 1)
    return {"perplexity": round(float(torch.exp(torch.cat(nll).sum() / tokens)), 3),
            "next_token_accuracy": round(float(torch.cat(hits).sum() / tokens), 4)}


class CausalLMTask(Task):
    """A local HF causal LM directory with held-out documents.

    Args:
        model_dir: local directory with config.json, safetensors weights and a tokenizer.
        documents: ``{"test": [text, ...], "validation": [...]}``; "test" is required.
        block_len: tokens per evaluation block (documents are concatenated with EOS and cut into blocks).
        draft_dir: optional smaller LM with the same tokenizer, for speculative decoding.
    """

    kind = "causal-lm"
    generates_text = True
    input_names = ("input_ids",)

    def __init__(self, model_dir: str | Path, documents: dict[str, list[str]], name: str | None = None,
                 block_len: int = 128, draft_dir: str | Path | None = None, trust_remote_code: bool = False,
                 allow_pickle: bool = False):
        if not documents.get("test"):
            raise ValueError("causal-lm task needs a non-empty 'test' list of documents")
        self.model_dir = Path(model_dir)
        self.draft_dir = Path(draft_dir) if draft_dir else None
        self.documents = documents
        self.name = name or self.model_dir.name
        self.block_len = block_len
        self.trust_remote_code = trust_remote_code
        self.allow_pickle = allow_pickle  # the user's explicit opt-in to pickled *.bin weights
        self.tokenizer = load_tokenizer(model_dir, trust_remote_code)
        self._blocks: dict[str, torch.Tensor] = {}

    def load_model(self, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.nn.Module:
        return load_hf_model(self.model_dir, "AutoModelForCausalLM", self.trust_remote_code, dtype=dtype,
                             device=device, allow_pickle=self.allow_pickle)

    def load_draft(self, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.nn.Module:
        if self.draft_dir is None:
            raise ValueError(f"task {self.name!r} has no draft model: pass draft_dir=")
        return load_hf_model(self.draft_dir, "AutoModelForCausalLM", self.trust_remote_code, dtype=dtype,
                             device=device, allow_pickle=self.allow_pickle)

    def token_blocks(self, split: str = "test", block_len: int | None = None) -> torch.Tensor:
        """Documents joined with EOS and cut into [N, block_len] blocks."""
        block_len = block_len or self.block_len
        key = f"{split}:{block_len}"
        if key not in self._blocks:
            eos = self.tokenizer.eos_token_id
            ids: list[int] = []
            for doc in self.documents[split]:
                # verbose=False: documents longer than the model's context are fine here, they are cut into blocks.
                ids.extend(self.tokenizer(doc, verbose=False)["input_ids"] + ([eos] if eos is not None else []))
            n = len(ids) // block_len
            if n == 0:
                raise ValueError(f"split {split!r} has fewer than {block_len} tokens: add documents or lower block_len")
            self._blocks[key] = torch.tensor(ids[: n * block_len]).view(n, block_len)
        return self._blocks[key]

    def evaluate(self, variant: Variant, split: str = "test", limit: int | None = None,
                 batch_size: int = 16) -> QualityResult:
        blocks = self.token_blocks(split)[:limit]
        nll, hits = [], []
        # The runner hands back whole [B, T, V] fp32 logits: cap B so one batch holds at most LOGITS_BUDGET of them
        # (a 128k vocabulary at T=128 is 64 MB a row).
        batch_size = max(1, min(batch_size, LOGITS_BUDGET // (blocks.shape[1] * max(1, len(self.tokenizer)))))
        for chunk in blocks.split(batch_size):
            n, h = block_nll(torch.as_tensor(variant({"input_ids": chunk})), chunk)
            nll.append(n), hits.append(h)
        nll_t, hits_t = torch.cat(nll), torch.cat(hits)
        per_block = blocks.shape[1] - 1
        ppl, low, high = perplexity_with_ci(nll_t.tolist(), [per_block] * len(nll_t))
        acc = float(hits_t.sum() / (per_block * len(hits_t)))
        return QualityResult("perplexity", ppl, low, high, len(nll_t), False, {"next_token_accuracy": round(acc, 4)})

    def example_inputs(self, batch_size: int = 1, seq_len: int | None = None) -> dict[str, torch.Tensor]:
        blocks = self.token_blocks("test")
        seq_len = seq_len or self.block_len
        if seq_len > blocks.shape[1]:
            blocks = self.token_blocks("test", seq_len)
        rows = [blocks[i % len(blocks), :seq_len] for i in range(batch_size)]
        return {"input_ids": torch.stack(rows)}

    def tokens_in(self, inputs: dict[str, torch.Tensor]) -> int:
        return int(inputs["input_ids"].numel())   # every position of a prefill batch is a token processed

    def calibration_batches(self, n_examples: int = 128, batch_size: int = 8, seq_len: int | None = None) -> Iterator[dict]:
        split = "validation" if self.documents.get("validation") else "test"
        blocks = self.token_blocks(split, seq_len or self.block_len)[:n_examples]
        for chunk in blocks.split(batch_size):
            yield {"input_ids": chunk}

    def prompts(self, n: int = 8, prompt_tokens: int = 32, split: str = "test") -> list[torch.Tensor]:
        """Held-out prompts ([1, prompt_tokens] each) for generation scenarios."""
        blocks = self.token_blocks(split, prompt_tokens)
        step = max(1, len(blocks) // n)
        return [blocks[i * step: i * step + 1] for i in range(min(n, len(blocks)))]


class PydocLMTask(CausalLMTask):
    """Built-in demo: GPT-2 (6x256) trained on the CPython docs, with a 2 x 128 draft distilled from it for speculative decoding."""

    def __init__(self, model_dir: str | Path = DEMO_TARGET_DIR, draft_dir: str | Path | None = DEMO_DRAFT_DIR):
        from workbench.tasks.demo_data import corpus_split

        docs = {s: corpus_split(s) for s in ("validation", "test")}
        super().__init__(model_dir, docs, name="causal-lm", draft_dir=draft_dir)
