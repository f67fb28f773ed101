"""Static int8 quantisation (ONNX Runtime QDQ), in two explicit phases.

1. :func:`calibrate` runs the float ONNX model over calibration batches (``task.calibration_batches(...)``, any
   batch size) and saves the activation ranges (MinMax, Entropy or Percentile) to a folder.
2. ``apply(variant, QuantizeStaticConfig(ranges=folder, ...))`` writes the QDQ model from those ranges:
   per-channel weights, operator types and nodes to exclude (e.g. from :mod:`workbench.steps.quantize.sensitivity`).

Keeping the phases apart means one calibration serves many quantisation settings, and the config stays a small
JSON-safe record (the ranges folder is named by a hash of model + method + data).

Example:
    >>> ranges = calibrate(onnx_fp32, task.calibration_batches(128, batch_size=8), method="percentile")  # doctest: +SKIP
    >>> int8 = apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder), per_channel=True))
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from workbench.core import Variant, register_step
from workbench.steps.onnx_io import artifacts_root, atomic_dir, onnx_variant, sha256, step_dir, write_checksums

METHODS = ("minmax", "entropy", "percentile")
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


def _check_batch(batch: dict, specs: dict, index: int) -> dict[str, np.ndarray]:
    """Numpy feed for one batch, or a clear error naming the input, what it got and what the model takes."""
    from workbench.runtime.ort import _NP_TYPES, _as_numpy

    feed = {}
    for name, spec in specs.items():
        if name not in batch:
            raise CalibrationDataError(f"calibration batch {index} lacks input {name!r} (has {sorted(batch)}): "
                                       f"the model takes {sorted(specs)}; use task.calibration_batches(...)")
        arr = _as_numpy(batch[name])
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
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    from workbench.runtime.ort import create_session

    if method not in METHODS:
        raise ValueError(f"calibration method {method!r} unknown: use one of {METHODS}")
    if variant.backend != "onnxruntime" or variant.precision != "fp32":
        raise ValueError(f"calibrate needs an fp32 ONNX variant, got {variant.name!r}: apply ExportOnnxConfig first")
    specs = {i.name: i for i in create_session(variant.artifact_path, threads=1).get_inputs()}
    feeds = [_check_batch(b, specs, i) for i, b in enumerate(batches)]
    if not feeds:
        raise CalibrationDataError("no calibration batches: the calibration split is empty")
    digest = hashlib.sha256(json.dumps([sha256(variant.artifact_path), method, percentile, list(op_types)]).encode())
    for feed in feeds:
        for arr in feed.values():
            digest.update(arr.tobytes())
    folder = Path(out_dir or artifacts_root() / "calibration") / f"calib-{method}-{digest.hexdigest()[:12]}"
    with atomic_dir(folder) as tmp:
        calibrator = create_calibrator(Path(variant.artifact_path), list(op_types), str(tmp / "augmented.onnx"),
                                       {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                                        "percentile": CalibrationMethod.Percentile}[method],
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


@dataclass(frozen=True)
class QuantizeStaticConfig:
    """Static QDQ int8 from saved ranges.

    Args:
        ranges: the folder :func:`calibrate` returned (``ranges.folder``).
        per_channel: one weight scale per output channel.
        reduce_range: 7-bit weights (AVX2 without VNNI: avoids u8s8 saturation).
        activations: "int8" (S8S8, ORT's recommended first choice) or "uint8" (U8S8).
        op_types: operator types to quantise (a subset of those calibrated).
        nodes_to_exclude: node names kept in float (see :func:`workbench.steps.quantize.sensitivity.layer_sensitivity`).
        threads / out_dir: ORT threads of the new variant, parent folder of its file.
    """

    ranges: str
    per_channel: bool = True
    reduce_range: bool = False
    activations: str = "int8"
    op_types: tuple[str, ...] = DEFAULT_OP_TYPES
    nodes_to_exclude: tuple[str, ...] = ()
    threads: int | None = None
    out_dir: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "ranges", str(self.ranges))
        object.__setattr__(self, "op_types", tuple(self.op_types))
        object.__setattr__(self, "nodes_to_exclude", tuple(self.nodes_to_exclude))
        if self.activations not in ("int8", "uint8"):
            raise ValueError(f"activations {self.activations!r}: use 'int8' or 'uint8'")
        bad = set(self.op_types) - set(OP_TYPES)
        if bad or not self.op_types:
            raise ValueError(f"op_types {sorted(bad) or '()'} not supported here: pick from {OP_TYPES}")

    @classmethod
    def per_channel_int8(cls, ranges) -> "QuantizeStaticConfig":
        return cls(ranges=str(getattr(ranges, "folder", ranges)))

    @classmethod
    def per_tensor_int8(cls, ranges) -> "QuantizeStaticConfig":
        return cls(ranges=str(getattr(ranges, "folder", ranges)), per_channel=False)


def _load_ranges(variant: Variant, config: QuantizeStaticConfig) -> dict:
    folder = Path(config.ranges)
    info_path = folder / "calibration.json"
    if not info_path.is_file() or not (folder / "ranges.json").is_file():
        raise FileNotFoundError(f"{folder} holds no calibration ranges: run workbench.steps.quantize.static.calibrate "
                                "first and pass ranges=<its .folder>")
    info = json.loads(info_path.read_text())
    if info["model_sha256"] != sha256(variant.artifact_path):
        raise ValueError(f"ranges in {folder} were calibrated on another model than {variant.artifact_path}: "
                         "calibrate this variant")
    missing = set(config.op_types) - set(info["op_types"])
    if missing:
        raise ValueError(f"op_types {sorted(missing)} were not calibrated ({info['op_types']}): calibrate with them")
    return info


@register_step("quantize_static", QuantizeStaticConfig)
def quantize_static_step(variant: Variant, config: QuantizeStaticConfig) -> Variant:
    """QDQ int8 model of an fp32 ONNX variant from ranges saved by :func:`calibrate`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from workbench.steps.quantize.diagnostics import node_counts

    if variant.backend != "onnxruntime" or variant.precision != "fp32":
        raise ValueError(f"quantize_static needs an fp32 ONNX variant, got {variant.name!r}")
    info = _load_ranges(variant, config)
    method = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
              "percentile": CalibrationMethod.Percentile}[info["method"]]
    act = QuantType.QInt8 if config.activations == "int8" else QuantType.QUInt8
    dest = step_dir(variant, "quantize_static", config, config.out_dir)
    with atomic_dir(dest) as tmp:
        quantize_static(str(variant.artifact_path), str(tmp / "model.onnx"), None, quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(config.op_types), per_channel=config.per_channel,
                        reduce_range=config.reduce_range, activation_type=act, weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(config.nodes_to_exclude), calibrate_method=method,
                        calibration_cache_path=Path(config.ranges) / "ranges.json",
                        extra_options={"DefaultTensorType": 1})  # 1 = FLOAT, for contrib ops shape inference skips
        sums = write_checksums(tmp)
    name = f"ort-int8-static-{info['method']}" + ("-pc" if config.per_channel else "")
    return onnx_variant(variant, dest / "model.onnx", name, "int8", config.threads,
                        meta={"sha256": sums["model.onnx"], "calibration": info,
                              "node_counts": node_counts(dest / "model.onnx")})


__all__ = ["calibrate", "CalibrationRanges", "CalibrationDataError", "QuantizeStaticConfig", "quantize_static_step"]
