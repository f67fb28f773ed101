"""Build the demo tasks' data files from what every CPython install ships.

Run once (``python -m workbench.assets.build_data``); the outputs are committed so that every
machine, whatever its Python version, sees the same examples and the same held-out split.

* ``docstrings.jsonl.gz``: stdlib function/class docstrings labelled by their top-level package
  (text-classification task).
* ``pydoc_corpus.txt.gz``: the CPython documentation topics (``pydoc_data``) followed by the docstrings of
  the single-file stdlib modules, documents separated by blank lines (causal-lm task).
"""
from __future__ import annotations

import ast
import gzip
import json
import os
import random
import sys
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
# Packages with >= ~100 docstrings in CPython 3.11; fixed so the label set never drifts.
CLASSIFIER_PACKAGES = (
    "tkinter", "idlelib", "asyncio", "distutils", "importlib", "email",
    "logging", "xml", "multiprocessing", "unittest", "lib2to3", "http",
)
MIN_DOC_CHARS = 30
SEED = 0


def _stdlib_dir() -> Path:
    return Path(os.__file__).parent


def _python_files(package_dir: Path):
    for root, _dirs, files in os.walk(package_dir):
        if {"test", "tests"} & set(Path(root).relative_to(package_dir).parts):
            continue
        for name in sorted(files):
            if name.endswith(".py"):
                yield Path(root) / name


def _docstrings(path: Path, kinds=(ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError):
        return
    for node in ast.walk(tree):
        if isinstance(node, kinds):
            doc = ast.get_docstring(node)
            if doc and len(doc) >= MIN_DOC_CHARS:
                yield doc


def build_classification_rows() -> list[dict]:
    rows, seen = [], set()
    for label, package in enumerate(CLASSIFIER_PACKAGES):
        package_dir = _stdlib_dir() / package
        if not package_dir.is_dir():
            raise SystemExit(f"stdlib package {package!r} missing in {sys.version}: build with CPython 3.11")
        for path in _python_files(package_dir):
            for doc in _docstrings(path):
                text = " ".join(doc.split())
                if text not in seen:  # duplicates would leak between splits
                    seen.add(text)
                    rows.append({"text": text, "label": label, "package": package})
    random.Random(SEED).shuffle(rows)
    n = len(rows)
    for i, row in enumerate(rows):
        row["split"] = "train" if i < 0.8 * n else ("validation" if i < 0.9 * n else "test")
    return rows


def build_lm_corpus() -> str:
    import pydoc_data.topics as topics

    docs = [topics.topics[key].strip() for key in sorted(topics.topics)]
    for path in sorted(_stdlib_dir().glob("*.py")):
        # Module, class and function docstrings of single-file stdlib modules: English prose about code.
        for doc in _docstrings(path, kinds=(ast.Module, ast.ClassDef, ast.FunctionDef)):
            docs.append(doc.strip())
    return "\n\n".join(docs) + "\n"


def main() -> None:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rows = build_classification_rows()
    # mtime=0 keeps the gzip bytes reproducible.
    with gzip.GzipFile(DATA_DIR / "docstrings.jsonl.gz", "wb", mtime=0) as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows).encode())
    corpus = build_lm_corpus()
    with gzip.GzipFile(DATA_DIR / "pydoc_corpus.txt.gz", "wb", mtime=0) as f:
        f.write(corpus.encode())
    print(f"docstrings: {len(rows)} rows, {len(CLASSIFIER_PACKAGES)} classes; corpus: {len(corpus):,} chars")


if __name__ == "__main__":
    main()
