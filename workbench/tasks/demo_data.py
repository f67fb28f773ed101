"""Loaders for the demo tasks' committed data (built by ``workbench.assets.build_data``)."""
from __future__ import annotations

import gzip
import json
import random
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "assets" / "data"
SPLITS = ("train", "validation", "test")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use one of {SPLITS}")


@lru_cache(maxsize=1)
def _docstring_rows() -> tuple[dict, ...]:
    with gzip.open(DATA_DIR / "docstrings.jsonl.gz", "rt", encoding="utf-8") as f:
        return tuple(json.loads(line) for line in f)


def docstring_split(split: str) -> tuple[list[str], list[int]]:
    """Texts and integer labels of one split of the stdlib-docstring classification set."""
    _check_split(split)
    rows = [r for r in _docstring_rows() if r["split"] == split]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def docstring_label_names() -> list[str]:
    names: dict[int, str] = {}
    for r in _docstring_rows():
        names[r["label"]] = r["package"]
    return [names[i] for i in sorted(names)]


@lru_cache(maxsize=1)
def _corpus_documents() -> tuple[str, ...]:
    with gzip.open(DATA_DIR / "pydoc_corpus.txt.gz", "rt", encoding="utf-8") as f:
        return tuple(d for d in f.read().split("\n\n") if d.strip())


def corpus_split(split: str) -> list[str]:
    """Documents of one split of the CPython-docs corpus: 90/5/5, shuffled with a fixed seed."""
    _check_split(split)
    docs = list(_corpus_documents())
    random.Random(0).shuffle(docs)
    n = len(docs)
    bounds = {"train": (0, int(0.9 * n)), "validation": (int(0.9 * n), int(0.95 * n)), "test": (int(0.95 * n), n)}
    lo, hi = bounds[split]
    return docs[lo:hi]
