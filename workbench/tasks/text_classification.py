"""Sequence classification tasks: the built-in docstring classifier and any local HF classifier."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Iterator

import torch

from workbench.core import Variant
from workbench.util.stats import accuracy_with_ci
from workbench.tasks.base import QualityResult, Task
from workbench.tasks.hf_loading import ensure_pad_token, load_hf_model, load_tokenizer

DEMO_MODEL_DIR = Path(__file__).resolve().parent.parent / "assets" / "models" / "docstring-bert"


def predict_labels(runner, tokenizer, texts: list[str], batch_size: int = 64, max_length: int = 128) -> list[int]:
    """Argmax labels of ``runner`` (any Variant or callable inputs -> logits) over ``texts``."""
    preds: list[int] = []
    for i in range(0, len(texts), batch_size):
        enc = tokenizer(texts[i:i + batch_size], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        logits = torch.as_tensor(runner(dict(enc)))
        preds.extend(logits.argmax(-1).tolist())
    return preds


def classifier_accuracy(model: torch.nn.Module, tokenizer, texts: list[str], labels: list[int]) -> float:
    """Plain accuracy of a torch module, used by the training script."""
    from workbench.runtime.torch_runner import TorchRunner

    preds = predict_labels(TorchRunner(model.eval()), tokenizer, texts)
    return round(sum(p == y for p, y in zip(preds, labels)) / len(labels), 4)


class SequenceClassificationTask(Task):
    """A local HF ``*ForSequenceClassification`` directory with labelled text splits.

    Args:
        model_dir: local directory with config.json, safetensors weights and a tokenizer.
        splits: ``{"test": (texts, labels), "validation": (...), ...}``; "test" is required.
        max_length: tokens per example for evaluation and timing inputs.
    """

    kind = "classification"

    def __init__(self, model_dir: str | Path, splits: dict[str, tuple[list[str], list[int]]], name: str | None = None,
                 max_length: int = 128, trust_remote_code: bool = False, allow_pickle: bool = False):
        if "test" not in splits or not splits["test"][0]:
            raise ValueError("classification task needs a non-empty 'test' split of (texts, labels)")
        for split, (texts, labels) in splits.items():
            if len(texts) != len(labels):
                raise ValueError(f"split {split!r}: {len(texts)} texts but {len(labels)} labels")
        self.model_dir = Path(model_dir)
        self.splits = splits
        self.name = name or self.model_dir.name
        self.max_length = max_length
        self.trust_remote_code = trust_remote_code
        self.allow_pickle = allow_pickle  # the user's explicit opt-in to pickled *.bin weights
        self.tokenizer = load_tokenizer(model_dir, trust_remote_code)
        ensure_pad_token(self.tokenizer)  # decoder classifiers (Llama, GPT-2...) ship without one
        self.tokenizer.padding_side = "right"  # see ensure_pad_token: left pads shift decoder position ids
        self.input_names = tuple(self.tokenizer.model_input_names)

    def load_model(self, dtype: torch.dtype = torch.float32, device: str = "cpu") -> torch.nn.Module:
        model = load_hf_model(self.model_dir, "AutoModelForSequenceClassification", self.trust_remote_code,
                              dtype=dtype, device=device, allow_pickle=self.allow_pickle)
        ensure_pad_token(self.tokenizer, model.config)  # the head pools at the last token that is not pad_token_id
        return model

    def evaluate(self, variant: Variant, split: str = "test", limit: int | None = None) -> QualityResult:
        texts, labels = self.splits[split]
        texts, labels = texts[:limit], labels[:limit]
        preds = predict_labels(variant, self.tokenizer, texts, max_length=self.max_length)
        correct = tuple(float(p == y) for p, y in zip(preds, labels))
        acc, low, high = accuracy_with_ci(correct)
        majority = Counter(labels).most_common(1)[0][1] / len(labels)
        return QualityResult("accuracy", acc, low, high, len(labels), True, {"majority_baseline": round(majority, 4)},
                             per_example=correct)

    def _texts_for_shapes(self, split: str) -> list[str]:
        return self.splits.get(split, self.splits["test"])[0]

    def example_inputs(self, batch_size: int = 1, seq_len: int | None = None) -> dict[str, torch.Tensor]:
        """Real texts tokenised and padded/truncated to exactly ``seq_len`` tokens."""
        seq_len = seq_len or self.max_length
        texts = self._texts_for_shapes("test")
        picked = [texts[i % len(texts)] for i in range(batch_size)]
        return dict(self.tokenizer(picked, truncation=True, max_length=seq_len, padding="max_length", return_tensors="pt"))

    def tokens_in(self, inputs: dict[str, torch.Tensor]) -> int:
        """Real tokens of a batch: padding is not text a client sends or pays for (the attention mask says which)."""
        mask = inputs.get("attention_mask")
        return int(mask.sum()) if mask is not None else int(inputs["input_ids"].numel())

    def calibration_batches(self, n_examples: int = 128, batch_size: int = 8, seq_len: int | None = None) -> Iterator[dict]:
        texts = self._texts_for_shapes("validation")[:n_examples]
        for i in range(0, len(texts), batch_size):
            yield dict(self.tokenizer(texts[i:i + batch_size], truncation=True, max_length=seq_len or self.max_length,
                                      padding="max_length", return_tensors="pt"))


class DocstringClassificationTask(SequenceClassificationTask):
    """Built-in demo: which stdlib package a docstring comes from (12 classes), small BERT trained here."""

    def __init__(self, model_dir: str | Path = DEMO_MODEL_DIR):
        from workbench.tasks.demo_data import docstring_split

        splits = {s: docstring_split(s) for s in ("train", "validation", "test")}
        super().__init__(model_dir, splits, name="text-classification")
