"""Shared plumbing of the ONNX steps: where a step writes its files and the ONNX Runtime variant it returns.

Atomic folders and checksums: :mod:`workbench.util.files`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from workbench.core import Variant, config_to_dict, lineage_id
from workbench.util.files import artifacts_root

# Facts a child ONNX variant inherits from its parent (the rest of meta describes the parent alone).
CARRIED_META = ("example_inputs", "model_kind", "export")


def step_dir(parent: Variant, step: str, config, out_dir: str | None = None) -> Path:
    """``<out_dir or artifacts/onnx>/<step>-<id of the variant being made>``: same recipe, same folder."""
    child_id = lineage_id(parent.id, step, config_to_dict(config))
    return Path(out_dir or artifacts_root() / "onnx") / f"{step}-{child_id}"


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


class MultiGraphError(ValueError):
    """A step that rewrites one ONNX graph was given a multi-file export (encoder + decoders)."""


def require_single_graph(variant: Variant, step: str) -> None:
    """Refuse, naming the files, an encoder-decoder export (``meta["onnx_files"]``: encoder, decoder, decoder with
    past): rewriting only ``artifact_path`` (the encoder) would leave a variant whose runner is half-optimised."""
    files = variant.meta.get("onnx_files") or []
    if len(files) > 1:
        raise MultiGraphError(f"{step} rewrites one ONNX graph, but {variant.name!r} is an encoder-decoder export of "
                              f"{len(files)} graphs ({', '.join(files)}): not supported for seq2seq yet; quantise the "
                              "torch model instead (QuantizeDynamicConfig on task.baseline())")
