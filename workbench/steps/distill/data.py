"""Transfer sets for distillation: labelled train/validation text (demo splits or a user file) and extra text.

Every check here runs before training starts, so bad data fails in seconds with a message naming the fix.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DEMO_TASKS = ("text-classification", "causal-lm")


@dataclass
class TextSplits:
    """Train and validation texts; labels are None for unlabelled data (pure distillation, alpha=1)."""

    train: list[str]
    train_labels: list[int] | None
    validation: list[str]
    validation_labels: list[int] | None


def _file_labels(rows: list[dict], path, label2id: dict, num_labels: int) -> list[int] | None:
    if not any("label" in r for r in rows):
        return None
    out = []
    for number, row in enumerate(rows, 1):
        value = row.get("label")
        if value is None or value == "":
            raise ValueError(f"{path}: row {number} has no 'label' (others do): label every row or none")
        if isinstance(value, str) and not value.lstrip("-").isdigit():
            if value not in label2id:
                raise ValueError(f"{path}: label {value!r} is not one of the teacher's labels {sorted(label2id)}")
            value = label2id[value]
        out.append(int(value))
    bad = [y for y in out if not 0 <= y < num_labels]
    if bad:
        raise ValueError(f"{path}: label {bad[0]} is outside the teacher's {num_labels} classes (0..{num_labels - 1})")
    return out


def classification_splits(task_name: str, train_data: str | None, teacher_config, seed: int = 0) -> TextSplits:
    """Demo docstring splits for the built-in task, else a user's JSONL/CSV (``text``, optional ``label``)."""
    if train_data is None:
        if task_name != "text-classification":
            raise ValueError(f"task {task_name!r} is not a built-in task: pass train_data=<file.jsonl|.csv> "
                             "with a 'text' (and 'label') column")
        from workbench.tasks.demo_data import docstring_split

        (tx, ty), (vx, vy) = docstring_split("train"), docstring_split("validation")
        return TextSplits(tx, ty, vx, vy)
    from workbench.tasks.user_data import read_records, split_records

    rows = read_records(train_data)
    if any(not isinstance(r.get("text"), str) or not r["text"] for r in rows):
        raise ValueError(f"{train_data}: every row needs a non-empty 'text' field")
    labels = _file_labels(rows, train_data, teacher_config.label2id or {}, teacher_config.num_labels)
    pairs = list(zip([r["text"] for r in rows], labels or [None] * len(rows)))
    val, train = split_records(pairs, seed, test_fraction=0.9)  # 10% held out for early stopping
    if not val or not train:
        raise ValueError(f"{train_data} has {len(rows)} rows: distillation needs at least 10 (train + validation)")
    lab = labels is not None
    return TextSplits([t for t, _ in train], [y for _, y in train] if lab else None,
                      [t for t, _ in val], [y for _, y in val] if lab else None)


def lm_documents(task_name: str, train_data: str | None, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, validation) documents: the demo corpus for the built-in LM task, else a user's text file."""
    if train_data is None:
        if task_name != "causal-lm":
            raise ValueError(f"task {task_name!r} is not a built-in task: pass train_data=<file.jsonl|.csv> "
                             "with a 'text' column")
        from workbench.tasks.demo_data import corpus_split

        return corpus_split("train"), corpus_split("validation")
    from workbench.tasks.user_data import _column, read_records, split_records

    docs = _column(read_records(train_data), "text", train_data)
    val, train = split_records(docs, seed, test_fraction=0.9)
    return train, val


def extra_texts(source: str | None) -> list[str]:
    """Unlabelled text the teacher scores for the student: "demo-corpus" (CPython docs paragraphs) or a file."""
    if source is None:
        return []
    if source == "demo-corpus":
        from workbench.tasks.demo_data import corpus_split

        return [d for d in corpus_split("train") if len(d) > 40]
    from workbench.tasks.user_data import _column, read_records

    return _column(read_records(source), "text", source)


def tokenize(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"] if texts else []


def pad_batch(seqs: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest sequence in the batch (dynamic padding: most docstrings are short)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
        mask[i, :len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def lm_blocks(tokenizer, docs: list[str], block_len: int) -> torch.Tensor:
    """Documents joined with EOS and cut into [N, block_len] token blocks (the corpus for token-level KD)."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for row in tokenizer(docs)["input_ids"]:
        ids.extend(row + ([eos] if eos is not None else []))
    n = len(ids) // block_len
    if n == 0:
        raise ValueError(f"the LM training text has {len(ids)} tokens, fewer than one block of {block_len}: add text")
    return torch.tensor(ids[: n * block_len]).view(n, block_len)
