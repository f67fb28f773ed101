"""Rows of an optimize study as they are measured, and resume: ``artifacts/<study>/results.jsonl``.

Every measured row is appended (fsynced) the moment it exists, with ``scenario`` "optimize-<stage>", ``stage``,
``arm`` and ``batch_size``. A re-run of the same command reads them back and measures only what is missing: the key
of a measurement is (stage, arm, batch size, rung). ``redo`` moves the old rows aside (``results.jsonl.<time>.bak``)
and starts over. The run's own facts (settings, wall time spent) live in ``run.json`` beside the rows, so a resumed
run continues the same budget and refuses to mix settings.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

SCENARIOS = ("optimize-screen", "optimize-quality", "optimize-sweep", "optimize-confirm", "optimize-load")


def key(row: dict) -> tuple:
    return (row.get("stage"), row.get("arm"), row.get("batch_size"), row.get("rung"))


class Store:
    """The study's ResultsTable plus the resume look-up."""

    def __init__(self, folder: Path, settings: dict, redo: bool = False):
        from workbench.results import ResultsTable

        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        path, run = self.folder / "results.jsonl", self.folder / "run.json"
        if redo:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for p in (path, run, self.folder / "decision.json"):
                if p.exists():
                    p.rename(p.with_name(f"{p.name}.{stamp}.bak"))
        old = json.loads(run.read_text()) if run.exists() else None
        if old is not None and old.get("settings") != settings:
            changed = sorted(k for k in set(settings) | set(old.get("settings", {}))
                             if settings.get(k) != old.get("settings", {}).get(k))
            raise ValueError(f"{self.folder} holds an optimize run with other settings ({', '.join(changed)}): "
                             "re-run with the same arguments to resume, pass --redo to start over, or use another "
                             "--study")
        self.settings = settings
        self.spent_before_s = float(old.get("elapsed_s", 0.0)) if old else 0.0
        self.table = ResultsTable.for_study(self.folder.name, root=self.folder.parent)
        self.saved = {key(r): r for r in self.table.rows if str(r.get("scenario", "")).startswith("optimize-")}
        self.resumed = len(self.saved)

    def get(self, stage: str, arm: str, batch_size=None, rung=None) -> dict | None:
        return self.saved.get((stage, arm, batch_size, rung))

    def save(self, row: dict) -> dict:
        row = self.table.append({**row, "scenario": f"optimize-{row['stage']}"})
        self.saved[key(row)] = row
        return row

    def rows(self, stage: str | None = None) -> list[dict]:
        return [r for r in self.saved.values() if stage is None or r.get("stage") == stage]

    def record_time(self, elapsed_s: float) -> None:
        from workbench.util.files import write_file_atomic

        write_file_atomic(self.folder / "run.json", json.dumps({"settings": self.settings,
                                                               "elapsed_s": round(elapsed_s, 2)}, indent=2))


__all__ = ["Store", "SCENARIOS", "key"]
