"""How a variant runs: the torch runner (``torch_runner``), ONNX Runtime sessions and providers (``ort``), the
OpenVINO CPU runner (``openvino``), and tensor/array conversion (``arrays``); and the facts about a model and this
machine that steps and measurement both read: the files of an ONNX model (``onnx_files``), model-family shapes
(``families``), this CPU's flags (``cpu``), kernel profiles (``profile``), weight counts (``weights``) and the bytes a
decoder reads and holds (``kv_budget``).

Only this package (and ``tasks/``) knows which backend a variant uses. Steps, measurement, serving and the UI ask
the questions below instead of comparing ``variant.backend`` themselves.
"""
from __future__ import annotations

from pathlib import Path


def torch_module(variant):
    """The ``torch.nn.Module`` a torch variant runs in memory, or None (an ONNX variant, or one without its model)."""
    import torch

    if variant.backend != "torch" or not isinstance(variant.model, torch.nn.Module):
        return None
    return variant.model


def onnx_file(variant) -> Path | None:
    """The ONNX file an ONNX Runtime variant runs, or None for any other variant."""
    if variant.backend != "onnxruntime" or variant.artifact_path is None:
        return None
    return Path(variant.artifact_path)


def openvino_file(variant) -> Path | None:
    """The OpenVINO IR (.xml) an OpenVINO variant runs, or None for any other variant.

    Kept in ``meta["ir_path"]`` rather than ``artifact_path``: code that reads ``artifact_path`` expects ONNX.
    """
    if variant.backend != "openvino" or not variant.meta.get("ir_path"):
        return None
    return Path(variant.meta["ir_path"])


def require_torch_module(variant, step: str, fix: str = "apply it before exporting or quantising"):
    """:func:`torch_module`, or a ValueError naming the step, what it got, and ``fix``."""
    module = torch_module(variant)
    if module is None:
        raise ValueError(f"{step} needs a torch variant with its model, got {variant.name!r} ({variant.backend}): {fix}")
    return module


def require_onnx_file(variant, step: str, fix: str = "apply ExportOnnxConfig first") -> Path:
    """:func:`onnx_file`, or a ValueError naming the step, what it got, and ``fix``."""
    path = onnx_file(variant)
    if path is None:
        raise ValueError(f"{step} needs an ONNX variant, got {variant.name!r} ({variant.backend}): {fix}")
    return path


def runner_threads(variant) -> int | None:
    """The intra-op thread count ``variant``'s runner was created with and runs at (``runner.threads``).

    None for a runner that does not fix one (a plain callable): it runs at torch's count when called.
    """
    threads = getattr(variant.runner, "threads", None)
    return int(threads) if threads else None


def with_threads(variant, threads: int | None):
    """``variant`` running at ``threads`` intra-op threads: itself when ``threads`` is None or already its count, else
    the same variant (same id and lineage: threads are how it runs, not what it is) with a runner created at that
    count (a new ONNX Runtime session; the torch module shared). A plain-callable runner cannot be rebuilt: the
    variant comes back as it is and runs at torch's count, which measurement holds at ``threads``.
    """
    import dataclasses

    from workbench.runtime.threads import check_threads

    threads = check_threads(threads)
    if threads is None or runner_threads(variant) == threads or not hasattr(variant.runner, "with_threads"):
        return variant
    runner = variant.runner.with_threads(threads)
    meta = variant.meta
    if onnx_file(variant) is not None:
        meta = {**meta, "ort_threads": runner.threads}
    elif openvino_file(variant) is not None:
        meta = {**meta, "ov_threads": runner.threads}
    return dataclasses.replace(variant, runner=runner, meta=meta)


__all__ = ["torch_module", "onnx_file", "openvino_file", "require_torch_module", "require_onnx_file", "runner_threads", "with_threads"]
