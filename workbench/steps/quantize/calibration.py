"""Calibration, the first phase of static int8: run the fp32 ONNX model over calibration batches and save the
activation ranges (MinMax, Entropy or Percentile) to a folder named by a hash of model + method + data.

One calibration serves many quantisation settings (:mod:`workbench.steps.quantize.static` reads the folder).

Example:
    >>> ranges = calibrate(onnx_fp32, task.calibration_batches(128, batch_size=8), method="percentile")  # doctest: +SKIP
    >>> ranges.folder, ranges.n_examples
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from workbench.core import Variant
from workbench.runtime import require_onnx_file
from workbench.util.files import artifacts_root, publish_dir, sha256

METHODS = ("minmax", "entropy", "percentile")
# Operator types that can be calibrated and quantised here.
OP_TYPES = ("MatMul", "Gemm", "Add", "Mul", "Gather", "Softmax", "Transpose", "Reshape", "Conv", "Where", "Concat")
DEFAULT_OP_TYPES = ("MatMul", "Gemm")  # the GEMMs carry ~all the FLOPs; elementwise int8 mostly adds Q/DQ glue


@dataclass(frozen=True)
class CalibrationRanges:
    """Where :func:`calibrate` saved its ranges and how they were made."""

    folder: Path
    method: str
    model_sha256: str
    n_batches: int
    n_examples: int


class CalibrationDataError(ValueError):
    """Calibration batches that do not fit the model's inputs (names, rank, dtype)."""


def ort_calibration_method(method: str):
    """ONNX Runtime's ``CalibrationMethod`` for a method name of :data:`METHODS` (the one place that maps them)."""
    from onnxruntime.quantization import CalibrationMethod

    if method not in METHODS:
        raise ValueError(f"calibration method {method!r} unknown: use one of {METHODS}")
    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[method]


def require_fp32_onnx(variant: Variant, step: str) -> Path:
    """The fp32 ONNX file static quantisation starts from, or a clear error (int8 models cannot be recalibrated)."""
    path = require_onnx_file(variant, step)
    if variant.precision != "fp32":
        raise ValueError(f"{step} needs an fp32 ONNX variant, got {variant.name!r} ({variant.precision}): "
                         "calibrate and quantise the fp32 export")
    return path


def _check_batch(batch: dict, specs: dict, index: int) -> dict[str, np.ndarray]:
    """Numpy feed for one batch, or a clear error naming the input, what it got and what the model takes."""
    from workbench.runtime.arrays import to_numpy
    from workbench.runtime.ort import _NP_TYPES

    feed = {}
    for name, spec in specs.items():
        if name not in batch:
            raise CalibrationDataError(f"calibration batch {index} lacks input {name!r} (has {sorted(batch)}): "
                                       f"the model takes {sorted(specs)}; use task.calibration_batches(...)")
        arr = to_numpy(batch[name])
        if arr.ndim != len(spec.shape):
            raise CalibrationDataError(f"calibration batch {index}: {name!r} has shape {arr.shape}, the model wants "
                                       f"rank {len(spec.shape)} {spec.shape} (batch first); reshape the data")
        want = _NP_TYPES.get(spec.type)
        if want is not None and np.issubdtype(want, np.integer) != np.issubdtype(arr.dtype, np.integer):
            raise CalibrationDataError(f"calibration batch {index}: {name!r} is {arr.dtype}, the model wants {spec.type} "
                                       "(token ids and masks are integers: pass the tokenizer's output)")
        feed[name] = arr.astype(want or arr.dtype, copy=False)
    return feed


def calibrate(variant: Variant, batches: Iterable[dict], method: str = "minmax", percentile: float = 99.999,
              op_types: tuple[str, ...] = DEFAULT_OP_TYPES, out_dir: str | Path | None = None) -> CalibrationRanges:
    """Collect activation ranges of an fp32 ONNX variant over ``batches``.

    Args:
        variant: an ONNX fp32 variant (from ExportOnnxConfig or OptimizeConfig.o1()).
        batches: dicts of input tensors, e.g. ``task.calibration_batches(128, batch_size=8)``.
        method: "minmax", "entropy" or "percentile".
        percentile: the kept percentile of |activation| for method "percentile".
        op_types: operator types whose inputs/outputs get ranges (quantise the same or fewer types).
    """
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    from workbench.runtime.ort import create_session

    if method not in METHODS:
        raise ValueError(f"calibration method {method!r} unknown: use one of {METHODS}")
    require_fp32_onnx(variant, "calibrate")
    specs = {i.name: i for i in create_session(variant.artifact_path, threads=1).get_inputs()}
    feeds = [_check_batch(b, specs, i) for i, b in enumerate(batches)]
    if not feeds:
        raise CalibrationDataError("no calibration batches: the calibration split is empty")
    digest = hashlib.sha256(json.dumps([sha256(variant.artifact_path), method, percentile, list(op_types)]).encode())
    for feed in feeds:
        for arr in feed.values():
            digest.update(arr.tobytes())
    folder = Path(out_dir or artifacts_root() / "calibration") / f"calib-{method}-{digest.hexdigest()[:12]}"
    with publish_dir(folder) as tmp:
        calibrator = create_calibrator(Path(variant.artifact_path), list(op_types), str(tmp / "augmented.onnx"),
                                       ort_calibration_method(method),
                                       extra_options={"percentile": percentile} if method == "percentile" else {})
        calibrator.collect_data(_Reader(feeds))
        save_tensors_data(calibrator.compute_data(), tmp / "ranges.json")
        (tmp / "augmented.onnx").unlink(missing_ok=True)
        info = {"method": method, "model_sha256": sha256(variant.artifact_path), "n_batches": len(feeds),
                "n_examples": int(sum(next(iter(f.values())).shape[0] for f in feeds)), "op_types": list(op_types)}
        (tmp / "calibration.json").write_text(json.dumps(info, indent=2) + "\n")
    return CalibrationRanges(folder, method, info["model_sha256"], info["n_batches"], info["n_examples"])


class _Reader:
    """ORT's CalibrationDataReader protocol over prepared feeds."""

    def __init__(self, feeds):
        self.feeds, self.i = feeds, 0

    def get_next(self):
        self.i += 1
        return self.feeds[self.i - 1] if self.i <= len(self.feeds) else None

    def __len__(self):
        return len(self.feeds)

    def set_range(self, start_index, end_index):
        self.feeds, self.i = self.feeds[start_index:end_index], 0


__all__ = ["calibrate", "CalibrationRanges", "CalibrationDataError", "ort_calibration_method", "require_fp32_onnx",
           "METHODS", "OP_TYPES", "DEFAULT_OP_TYPES"]
