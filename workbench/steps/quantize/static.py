"""Static int8 quantisation (ONNX Runtime QDQ), in two explicit phases.

1. :func:`~workbench.steps.quantize.calibration.calibrate` runs the float ONNX model over calibration batches
   (``task.calibration_batches(...)``, any batch size) and saves the activation ranges (MinMax, Entropy or
   Percentile) to a folder.
2. ``apply(variant, QuantizeStaticConfig(ranges=folder, ...))`` writes the QDQ model from those ranges:
   per-channel weights, operator types and nodes to exclude (e.g. from :mod:`workbench.steps.quantize.sensitivity`).

Keeping the phases apart means one calibration serves many quantisation settings, and the config stays a small
JSON-safe record (the ranges folder is named by a hash of model + method + data).

Example:
    >>> ranges = calibrate(onnx_fp32, task.calibration_batches(128, batch_size=8), method="percentile")  # doctest: +SKIP
    >>> int8 = apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder), per_channel=True))
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from workbench.core import Variant, register_step
from workbench.steps.onnx_io import onnx_variant, step_dir
from workbench.steps.quantize.calibration import DEFAULT_OP_TYPES, OP_TYPES, ort_calibration_method, require_fp32_onnx
from workbench.util.files import publish_dir, sha256, write_checksums


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
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from workbench.runtime.weights import onnx_int8_share
    from workbench.steps.quantize.diagnostics import node_counts

    require_fp32_onnx(variant, "quantize_static")
    info = _load_ranges(variant, config)
    method = ort_calibration_method(info["method"])
    act = QuantType.QInt8 if config.activations == "int8" else QuantType.QUInt8
    dest = step_dir(variant, "quantize_static", config, config.out_dir)
    with publish_dir(dest) as tmp:
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
                              "node_counts": node_counts(dest / "model.onnx"),
                              "int8_param_share": round(onnx_int8_share(dest / "model.onnx"), 4)})


__all__ = ["QuantizeStaticConfig", "quantize_static_step"]
