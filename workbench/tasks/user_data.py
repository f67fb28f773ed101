"""Users' own data files: JSONL or CSV with a text column (and a label column for classification)."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path


def read_records(path: str | Path) -> list[dict]:
    """Rows of a .jsonl/.json-lines or .csv file, with errors that name the file, line and fix."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist: pass a .jsonl or .csv file")
    if path.suffix.lower() not in (".jsonl", ".json", ".csv"):
        raise ValueError(f"data file {path} has suffix {path.suffix!r}: use .jsonl (one JSON object a line) or .csv")
    rows: list[dict] = []
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    else:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number} is not valid JSON ({err.msg}): one JSON object per line") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number} is a {type(row).__name__}, not a JSON object")
            rows.append(row)
    if not rows:
        raise ValueError(f"data file {path} is empty: it needs at least one example")
    return rows


def _column(rows: list[dict], key: str, path) -> list:
    missing = [i for i, r in enumerate(rows, 1) if key not in r or r[key] in (None, "")]
    if missing:
        raise ValueError(f"{path}: row {missing[0]} has no {key!r} field ({len(missing)} rows lack it)")
    return [r[key] for r in rows]


def split_records(rows: list, seed: int = 0, test_fraction: float = 0.5) -> tuple[list, list]:
    """Seeded split into (validation, test) when the file has no 'split' column."""
    rows = list(rows)
    random.Random(seed).shuffle(rows)
    cut = int(len(rows) * (1 - test_fraction))
    return rows[:cut], rows[cut:]


def classification_splits(path, label_names: dict[str, int] | None = None, text_key="text", label_key="label"):
    """{split: (texts, labels)} from a file; labels may be ints or names found in the model's ``label2id``."""
    rows = read_records(path)
    texts, labels = _column(rows, text_key, path), _column(rows, label_key, path)
    ids = []
    for value in labels:
        if isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit()):
            ids.append(int(value))
        elif label_names and value in label_names:
            ids.append(label_names[value])
        else:
            raise ValueError(f"{path}: label {value!r} is neither an integer nor a label in the model config "
                             f"({sorted(label_names or {})})")
    pairs = list(zip(texts, ids))
    validation, test = split_records(pairs)
    return {"validation": ([t for t, _ in validation], [y for _, y in validation]),
            "test": ([t for t, _ in test], [y for _, y in test])}


def lm_documents(path, text_key="text") -> dict[str, list[str]]:
    rows = read_records(path)
    validation, test = split_records(_column(rows, text_key, path))
    return {"validation": validation, "test": test or validation}


def text2text_pairs(path, source_key="source", target_key="target") -> dict[str, list[tuple[str, str]]]:
    """{split: [(source, target), ...]} from a file with ``source`` and ``target`` columns (seeded split)."""
    rows = read_records(path)
    pairs = list(zip(_column(rows, source_key, path), _column(rows, target_key, path)))
    validation, test = split_records(pairs)
    return {"validation": validation, "test": test or validation}
