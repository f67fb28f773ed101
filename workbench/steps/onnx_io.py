"""Shared plumbing of the ONNX steps: where a step writes its files, atomic folders, checksums, ONNX variants."""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from workbench.core import Variant, config_to_dict, lineage_id

# Facts a child ONNX variant inherits from its parent (the rest of meta describes the parent alone).
CARRIED_META = ("example_inputs", "model_kind", "export")


def artifacts_root() -> Path:
    """``$WORKBENCH_ARTIFACTS`` when set (read now, not at import), else the results table's artifacts dir."""
    env = os.environ.get("WORKBENCH_ARTIFACTS")
    if env:
        return Path(env)
    from workbench import results

    return Path(results.ARTIFACTS_DIR)


def step_dir(parent: Variant, step: str, config, out_dir: str | None = None) -> Path:
    """``<out_dir or artifacts/onnx>/<step>-<id of the variant being made>``: same recipe, same folder."""
    child_id = lineage_id(parent.id, step, config_to_dict(config))
    return Path(out_dir or artifacts_root() / "onnx") / f"{step}-{child_id}"


@contextlib.contextmanager
def atomic_dir(dest: Path):
    """Yield a temp folder beside ``dest``; rename it to ``dest`` only if the block succeeds.

    A failed export or quantisation therefore never leaves a half-written model where a finished one is expected,
    and never clobbers an earlier good one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():  # same lineage id = same recipe: replace the old copy
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> dict[str, str]:
    """``checksums.json`` with the sha256 of every file in ``folder`` (ONNX + external data + tokenizer)."""
    sums = {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != "checksums.json"}
    (folder / "checksums.json").write_text(json.dumps(sums, indent=2) + "\n")
    return sums


def onnx_variant(parent: Variant, path: Path, name: str, precision: str, threads: int | None = None,
                 level: str = "all", meta: dict | None = None) -> Variant:
    """A ``backend="onnxruntime"`` Variant running ``path`` with an :class:`~workbench.runtime.ort.OrtRunner`."""
    from workbench.runtime.ort import OrtRunner

    runner = OrtRunner(path, device=parent.device, threads=threads, level=level)
    device = "cuda" if any(p in runner.providers for p in ("CUDAExecutionProvider", "TensorrtExecutionProvider")) else "cpu"
    carried = {k: parent.meta[k] for k in CARRIED_META if k in parent.meta}
    facts = {**carried, "providers": runner.providers, "provider_note": runner.session.provider_note, "ort_threads": runner.threads,
             "ort_level": level, **(meta or {})}
    return dataclasses.replace(parent, name=name, backend="onnxruntime", device=device, precision=precision, runner=runner,
                               model=None, artifact_path=Path(path), meta=facts, id="")
