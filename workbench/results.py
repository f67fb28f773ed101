"""ResultsTable: one tidy row per (variant, scenario, device, batch size, sequence length), saved as measured.

Rows are appended to ``artifacts/<study>/results.jsonl`` with flush + fsync, so a crash loses at most the row
in flight; the environment fingerprint lands beside them in ``environment.json``.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Iterable

from workbench.util.numbers import format_value, is_number

ARTIFACTS_DIR = Path(os.environ.get("WORKBENCH_ARTIFACTS", Path.cwd() / "artifacts"))

# Units of the metric columns, shown on plot axes and in reports.
UNITS = {"latency_p50_ms": "ms", "latency_p90_ms": "ms", "latency_p99_ms": "ms", "throughput_per_s": "items/s",
         "tokens_per_s": "tokens/s", "size_mb": "MB", "peak_rss_mb": "MB", "cuda_max_allocated_mb": "MB",
         "usd_per_1k_requests": "$", "usd_per_1m_tokens": "$", "quality": "task metric"}


class ResultsTable:
    """Append-only table of measurement rows, optionally backed by a JSONL file.

    Example:
        >>> table = ResultsTable.for_study("demo")          # artifacts/demo/results.jsonl
        >>> table.append({"variant": "torch-fp32", "latency_p50_ms": 3.2, "quality": 0.81})
        >>> table.pareto_front()
    """

    def __init__(self, path: str | Path | None = None, rows: Iterable[dict] = ()):
        self.path = Path(path) if path else None
        self.rows: list[dict] = list(rows)

    @classmethod
    def for_study(cls, study: str, root: str | Path | None = None, environment: dict | None = None) -> "ResultsTable":
        """Open (or create) ``<root>/<study>/results.jsonl``; existing rows are loaded and kept."""
        folder = Path(root or ARTIFACTS_DIR) / study
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "results.jsonl"
        table = cls.load(path) if path.exists() else cls(path)
        if environment is not None:
            (folder / "environment.json").write_text(json.dumps(environment, indent=2, default=str) + "\n")
        return table

    @classmethod
    def load(cls, path: str | Path) -> "ResultsTable":
        path = Path(path)
        if path.is_dir():
            path = path / "results.jsonl"
        if not path.exists():
            raise FileNotFoundError(f"no results at {path}: run `workbench measure` first or check the study name")
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                # Only a crash mid-write leaves a broken line, and only as the last one.
                if number != len(path.read_text().splitlines()):
                    raise ValueError(f"{path}:{number} is not valid JSON: the results file is corrupt")
        return cls(path, rows)

    def append(self, row: dict) -> dict:
        row = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **row}
        self.rows.append(row)
        if self.path:
            with open(self.path, "a") as f:
                f.write(json.dumps(row, default=_json_default) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return row

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def filter(self, **equals) -> "ResultsTable":
        return ResultsTable(None, [r for r in self.rows if all(r.get(k) == v for k, v in equals.items())])

    def pareto_front(self, x: str = "latency_p50_ms", y: str = "quality", higher_y_is_better: bool | None = None) -> list[dict]:
        """Rows not dominated on (lower ``x``, better ``y``). Rows missing either value are left out."""
        return pareto_front(self.rows, x, y, higher_y_is_better)

    def to_text(self, columns: tuple[str, ...] = ("variant", "scenario", "batch_size", "seq_len", "quality",
                                                  "quality_ci_low", "quality_ci_high", "latency_p50_ms",
                                                  "latency_p90_ms", "latency_p99_ms", "throughput_per_s", "size_mb")) -> str:
        """Plain-text table for terminals."""
        cols = [c for c in columns if any(c in r for r in self.rows)]
        cells = [[format_value(r.get(c)) for c in cols] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)


def pareto_front(rows: list[dict], x: str = "latency_p50_ms", y: str = "quality",
                 higher_y_is_better: bool | None = None) -> list[dict]:
    """Non-dominated rows: lower ``x`` is better; ``y`` direction from the rows' ``higher_is_better`` flag."""
    usable = [r for r in rows if is_number(r.get(x)) and is_number(r.get(y)) and not r.get("failed")]
    if not usable:
        return []
    if higher_y_is_better is None:
        higher_y_is_better = bool(usable[0].get("higher_is_better", True))
    sign = 1 if higher_y_is_better else -1
    front, best = [], -math.inf
    for row in sorted(usable, key=lambda r: (r[x], -sign * r[y])):
        if sign * row[y] > best:
            front.append(row)
            best = sign * row[y]
    return front


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
