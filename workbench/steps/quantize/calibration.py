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
from workbench.steps.onnx_io import require_single_graph
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
    require_single_graph(variant, step)
    if variant.precision != "fp32":
        raise ValueError(f"{step} needs an fp32 ONNX variant, got {variant.name!r} ({variant.precision}): "
                         "calibrate and quantise the fp32 export")
    return path


def _check_batch(batch: dict, specs: dict, index: int) -> dict[str, np.ndarray]:
    """Numpy feed for one batch, or a clear error naming the input, what it got and what the model takes."""
    from workbench.runtime.arrays import to_numpy
    from workbench.runtime.ort import _NP_TYPES

    feed = {}
    if "token_type_ids" in specs and "token_type_ids" not in batch and "input_ids" in batch:
        # segment ids default to 0 (one segment), as transformers and the ORT runner do; tokenizers that do not
        # list them in model_input_names (RoBERTa-style) give none
        batch = {**batch, "token_type_ids": np.zeros_like(to_numpy(batch["input_ids"]))}
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


def cache_feeds(runner, batch: dict, index: int) -> list[dict]:
    """Two complete feeds for a KV-cache decoder graph (``runner``: its OrtRunner) from one batch of ``input_ids``
    (+ optional attention_mask).

    The prefill feed runs tokens [0, T-1) with an empty cache; the step feed runs token T-1 with the cache that
    prefill returned (shapes from the graph and the family adapter, see ``OrtRunner.empty_past``), so ranges
    cover both paths generation uses. attention_mask / position_ids are derived as the runner does when serving.
    """
    from workbench.runtime.arrays import to_numpy

    if "input_ids" not in batch:
        raise CalibrationDataError(f"calibration batch {index} lacks input 'input_ids' (has {sorted(batch)}): a "
                                   "decoder LM is calibrated on token ids; use task.calibration_batches(...)")
    ids = to_numpy(batch["input_ids"]).astype(np.int64)
    if ids.ndim != 2 or ids.shape[1] < 2:
        raise CalibrationDataError(f"calibration batch {index}: input_ids shape {ids.shape}, a decoder needs "
                                   "[batch, >= 2 tokens] (prefill + one cached step)")
    mask = to_numpy(batch["attention_mask"]).astype(np.int64) if "attention_mask" in batch else np.ones_like(ids)
    prefill = runner.feed({"input_ids": ids[:, :-1], "attention_mask": mask[:, :-1]})
    out = dict(zip(runner.outputs, runner.session.run(None, prefill)))
    past = {p: out[p.replace("past_key_values", "present")] for p in runner.past_names}
    step = runner.feed({"input_ids": ids[:, -1:], "attention_mask": mask, **past})
    return [prefill, step]


def calibrate(variant: Variant, batches: Iterable[dict], method: str = "minmax", percentile: float = 99.999,
              op_types: tuple[str, ...] = DEFAULT_OP_TYPES, out_dir: str | Path | None = None) -> CalibrationRanges:
    """Collect activation ranges of an fp32 ONNX variant over ``batches``.

    Args:
        variant: an ONNX fp32 variant (from ExportOnnxConfig or OptimizeConfig.o1()).
        batches: dicts of input tensors, e.g. ``task.calibration_batches(128, batch_size=8)``.
        method: "minmax", "entropy" or "percentile".
        percentile: the kept percentile of |activation| for method "percentile".
        op_types: operator types whose inputs/outputs get ranges (quantise the same or fewer types).

    A decoder exported with a KV cache takes ``past_key_values.*`` (and derived attention_mask / position_ids)
    as inputs too: each batch of token ids is turned into a prefill and a cached-step feed (:func:`cache_feeds`).
    """
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    from workbench.runtime.ort import create_session

    if method not in METHODS:
        raise ValueError(f"calibration method {method!r} unknown: use one of {METHODS}")
    require_fp32_onnx(variant, "calibrate")
    specs = {i.name: i for i in create_session(variant.artifact_path, threads=1).get_inputs()}
    batches = list(batches)
    if not batches:
        raise CalibrationDataError("no calibration batches: the calibration split is empty")
    cached = any(name.startswith("past_key_values") for name in specs)
    if cached:  # decoder with a KV cache: every batch becomes a prefill feed and a cached-step feed
        from workbench.runtime.ort import OrtRunner

        runner = OrtRunner(variant.artifact_path, threads=1)  # one session serves every batch's prefill
        batches = [feed for i, b in enumerate(batches) for feed in cache_feeds(runner, b, i)]
    feeds = [_check_batch(b, specs, i) for i, b in enumerate(batches)]
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
        rows = int(sum(f["input_ids"].shape[0] if "input_ids" in f else next(iter(f.values())).shape[0] for f in feeds))
        info = {"method": method, "model_sha256": sha256(variant.artifact_path), "n_batches": len(feeds),
                "n_examples": rows // 2 if cached else rows, "op_types": list(op_types),
                # the cached-step feeds carry real past_key_values, so the decode path's ranges are measured too
                "kv_cache_calibrated": cached}
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


__all__ = ["calibrate", "cache_feeds", "CalibrationRanges", "CalibrationDataError", "ort_calibration_method",
           "require_fp32_onnx", "METHODS", "OP_TYPES", "DEFAULT_OP_TYPES"]
