"""Write a searched serving config into an existing bundle: ``config.pbtxt``, the model card's load section, the
manifest (every checksum recomputed) and the load rows in the bundle's ``results.jsonl``.

The bundle is rebuilt beside itself and swapped into place (``util.files.publish_dir``): a reader sees the old
complete bundle or the new complete one. Unchanged files are hard links into the old bundle (no copy of the model's
weights); every changed file is written to a new inode, so the old bundle is never modified in place. A bundle whose
files no longer match its manifest is refused before anything is written.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

MANIFEST_ONLY = ("format", "workbench_version", "created_at", "files")


def _link_tree(src: Path, dest: Path) -> None:
    """``dest`` (existing, empty) gets ``src``'s files as hard links (copies where linking is not possible)."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dest, copy_function=link, dirs_exist_ok=True)


def write_serving_config(bundle: str | Path, search: dict, load_rows: list[dict] | None = None) -> Path:
    """Put the search's winner (``SearchResult.as_dict()``) into ``bundle``; returns the bundle path.

    Args:
        search: ``SearchResult.as_dict()``: the winner's settings and measured curve, the baselines, the SLO.
        load_rows: the winner's load rows, appended to the bundle's ``results.jsonl`` (the card's figures' source).

    Raises:
        BundleError: the bundle's files do not match its manifest, or the search has no winner.
    """
    from workbench.measure.batching import sweep_rows
    from workbench.serving.bundle.export import write_manifest
    from workbench.serving.bundle.model_card import model_card
    from workbench.serving.bundle.serving_config import ServingConfig, edited_config_text
    from workbench.serving.bundle.verify import BundleError, check_files, load_manifest, model_paths
    from workbench.util.files import publish_dir, write_file_atomic

    bundle = Path(bundle)
    manifest = load_manifest(bundle)
    problems = check_files(bundle, manifest)
    if problems:
        raise BundleError(f"refusing to update {bundle}: " + "; ".join(problems) + " (re-export it first)")
    if not search.get("winner"):
        raise BundleError("the search found no config meeting the SLO: nothing to write; try a looser --slo-ms or "
                          "lower rates")
    winner = ServingConfig(**{k: (tuple(v) if isinstance(v, list) else v)
                              for k, v in search["winner"].items() if k != "label"})
    config_path, _ = model_paths(bundle, manifest)
    rel_config = config_path.relative_to(bundle)
    config_text = edited_config_text(config_path.read_text(), winner, manifest["name"])
    facts = {k: v for k, v in manifest.items() if k not in MANIFEST_ONLY}
    offline = {k: v for k, v in facts["batching"].items() if k != "searched"}
    facts["batching"] = {**offline, "max_batch_size": winner.max_batch_size,
                         "preferred_batch_sizes": list(winner.preferred_batch_sizes),
                         "max_queue_delay_us": winner.max_queue_delay_us, "instance_count": winner.instance_count,
                         "dynamic_batching": winner.dynamic_batching, "source": "load search",
                         "offline_plan": {k: offline.get(k) for k in ("max_batch_size", "preferred_batch_sizes",
                                                                       "max_queue_delay_us")}}
    facts["load"] = search
    rows = [json.loads(line) for line in (bundle / "results.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("scenario") not in ("load", "load-search")] + list(load_rows or [])
    sweep = sweep_rows(rows, (facts.get("served") or {}).get("variant_id"))
    with publish_dir(bundle) as tmp:
        _link_tree(bundle, tmp)
        write_file_atomic(tmp / rel_config, config_text)  # new inodes: the linked old files stay as they were
        write_file_atomic(tmp / "results.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in rows))
        write_file_atomic(tmp / "MODEL_CARD.md", model_card(facts, sweep))
        (tmp / "manifest.json").unlink()
        write_manifest(tmp, facts)
    return bundle


__all__ = ["write_serving_config"]
