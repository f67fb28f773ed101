"""Per-layer sensitivity of static int8 quantisation: which layers cause the loss, and what to keep in float.

Method (one layer at a time): with the same calibration ranges, quantise ONLY one group of nodes (a transformer
layer, the embeddings, the pooler, the classifier head... or single nodes), run it on held-out batches and compare
with the fp32 model: SQNR of the logits (dB, higher is better), top-1 agreement and, when a task is given, the
task metric. Groups whose quantisation alone hurts most are suggested for exclusion; apply the suggestion with
``QuantizeStaticConfig(nodes_to_exclude=report.suggested_exclusions)`` and re-measure.

Example:
    >>> report = layer_sensitivity(onnx_fp32, ranges, list(task.calibration_batches(32, 8)))   # doctest: +SKIP
    >>> print(report.to_text())
    >>> fixed = apply(onnx_fp32, QuantizeStaticConfig(ranges=str(ranges.folder),
    ...                                               nodes_to_exclude=report.suggested_exclusions))
"""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from workbench.steps.quantize.calibration import ort_calibration_method
from workbench.steps.quantize.static import QuantizeStaticConfig, _load_ranges

_LAYER = re.compile(r"(layers?|h|blocks?)[._/](\d+)")


def node_group(name: str) -> str:
    """Group key of a node name: ``layer.3`` for anything inside transformer block 3, else its first path part."""
    match = _LAYER.search(name)
    if match:
        return f"layer.{match.group(2)}"
    parts = [p for p in re.split(r"[/.]", name) if p and p not in ("bert", "model", "transformer", "roberta")]
    return parts[0] if parts else name


@dataclass
class SensitivityReport:
    """Per-group results, worst first, and the suggested float groups and node names."""

    rows: list[dict]
    suggested_groups: tuple[str, ...]
    suggested_exclusions: tuple[str, ...]
    full_int8: dict = field(default_factory=dict)

    def to_text(self) -> str:
        lines = [f"{'group':22s} {'nodes':>5s} {'SQNR dB':>8s} {'top-1 agr':>9s} {'metric':>8s}"]
        for r in self.rows:
            metric = f"{r['metric']:.4f}" if r.get("metric") is not None else "-"
            lines.append(f"{r['group']:22s} {r['n_nodes']:5d} {r['sqnr_db']:8.2f} {r['agreement']:9.4f} {metric:>8s}")
        if self.full_int8:
            lines.append(f"all quantised: SQNR {self.full_int8['sqnr_db']:.2f} dB, agreement "
                         f"{self.full_int8['agreement']:.4f}")
        lines.append(f"suggested to keep in float: {list(self.suggested_groups) or 'nothing'}")
        return "\n".join(lines)


def _quantizable_nodes(path: Path, op_types) -> list[str]:
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type in op_types]


def _score(ref: list[torch.Tensor], got: list[torch.Tensor]) -> dict:
    r, g = torch.cat([x.flatten(0, -2) for x in ref]), torch.cat([x.flatten(0, -2) for x in got])
    noise = float(((r - g) ** 2).mean())
    sqnr = 10 * np.log10(float((r ** 2).mean()) / max(noise, 1e-20))
    return {"sqnr_db": round(sqnr, 3), "agreement": round(float((r.argmax(-1) == g.argmax(-1)).float().mean()), 5)}


def _run(path: Path, batches, threads):
    from workbench.runtime.ort import OrtRunner

    runner = OrtRunner(path, threads=threads)
    return [runner(b) for b in batches], runner


def layer_sensitivity(variant, ranges, batches: list[dict], config: QuantizeStaticConfig | None = None,
                      granularity: str = "layer", task=None, eval_limit: int | None = 200,
                      max_suggestions: int = 2, min_sqnr_gap_db: float = 3.0, threads: int | None = None) -> SensitivityReport:
    """Quantise one group at a time and rank the groups by the damage they do alone.

    Args:
        variant: the fp32 ONNX variant that was calibrated.
        ranges: :class:`~workbench.steps.quantize.static.CalibrationRanges` (or its folder).
        batches: held-out input batches for the logit comparison (a few suffice).
        config: quantisation settings to test (per-channel, op types...); ``ranges`` inside it is replaced.
        granularity: "layer" (transformer blocks, head, embeddings) or "node" (each MatMul/Gemm alone).
        task: if given, ``task.evaluate`` (on ``eval_limit`` examples) is reported per group too.
        max_suggestions / min_sqnr_gap_db: suggest at most this many groups, each at least this many dB worse
            than the median group.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    if granularity not in ("layer", "node"):
        raise ValueError(f"granularity {granularity!r}: use 'layer' or 'node'")
    folder = str(getattr(ranges, "folder", ranges))
    config = QuantizeStaticConfig(**{**(config.__dict__ if config else {}), "ranges": folder})
    info = _load_ranges(variant, config)
    ref, _ = _run(variant.artifact_path, batches, threads)
    groups: dict[str, list[str]] = {}
    for name in _quantizable_nodes(variant.artifact_path, config.op_types):
        groups.setdefault(node_group(name) if granularity == "layer" else name, []).append(name)
    method = ort_calibration_method(info["method"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        def quantised(nodes, out):
            quantize_static(str(variant.artifact_path), out, None, quant_format=QuantFormat.QDQ,
                            op_types_to_quantize=list(config.op_types), per_channel=config.per_channel,
                            reduce_range=config.reduce_range, weight_type=QuantType.QInt8,
                            activation_type=QuantType.QInt8 if config.activations == "int8" else QuantType.QUInt8,
                            nodes_to_quantize=nodes, calibrate_method=method,
                            calibration_cache_path=Path(folder) / "ranges.json", extra_options={"DefaultTensorType": 1})
            return _run(Path(out), batches, threads)

        for i, (group, nodes) in enumerate(tqdm(groups.items(), desc="sensitivity", leave=False)):
            got, runner = quantised(nodes, f"{tmp}/g{i}.onnx")
            row = {"group": group, "n_nodes": len(nodes), "nodes": nodes, **_score(ref, got), "metric": None}
            if task is not None:
                row["metric"] = task.evaluate(_as_variant(variant, runner), limit=eval_limit).value
            rows.append(row)
        full = _score(ref, quantised(None, f"{tmp}/all.onnx")[0])
    rows.sort(key=lambda r: r["sqnr_db"])
    median = float(np.median([r["sqnr_db"] for r in rows])) if rows else 0.0
    picked = [r for r in rows[:max_suggestions] if r["sqnr_db"] < median - min_sqnr_gap_db]
    return SensitivityReport(rows, tuple(r["group"] for r in picked),
                             tuple(n for r in picked for n in r["nodes"]), full)


def _as_variant(parent, runner):
    import dataclasses

    return dataclasses.replace(parent, runner=runner, precision="int8", id="sensitivity")


__all__ = ["layer_sensitivity", "SensitivityReport", "node_group"]
