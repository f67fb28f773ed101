"""Diagnostics after quantisation: what got quantised, what the CPU can do, where time goes, and red flags.

- :func:`node_counts`: per operator type, how many nodes run quantised vs float (QOperator ops such as
  ``MatMulInteger``/``QAttention`` and QDQ-wrapped float ops both count as quantised).
- the CPU's AVX2 / AVX-512 / VNNI / AMX flags (int8 speed depends on them) come from
  :func:`workbench.runtime.cpu.cpu_isa`, time per operator type from :func:`workbench.runtime.profile.op_time_profile`.
- :func:`diagnose`: flags a variant slower than its parent or losing more accuracy than a tolerance, with the
  likely reason and what to try; given per-example scores, the drop is a paired bootstrap difference and a drop
  inside its CI is "no measurable loss".
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

QOPERATOR_OPS = {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "QLinearMatMul", "QGemm", "QLinearConv",
                 "ConvInteger", "QEmbedLayerNormalization", "MatMulIntegerToFloat", "QLinearAdd", "QLinearMul",
                 "DynamicQuantizeLSTM", "QLinearSoftmax", "QLinearGlobalAveragePool"}
QUANT_GLUE = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}


def node_counts(model) -> dict:
    """Per operator type: ``{"quantized": n, "float": n}``, plus totals and the Q/DQ glue count.

    Args:
        model: path to an .onnx file or an ``onnx.ModelProto``.

    Example:
        >>> node_counts("model_int8.onnx")["by_op"]["MatMul"]       # doctest: +SKIP
        {'quantized': 36, 'float': 12}
    """
    import onnx

    proto = onnx.load(str(model), load_external_data=False) if isinstance(model, (str, Path)) else model
    nodes = proto.graph.node
    dq_outputs = {out for n in nodes if n.op_type == "DequantizeLinear" for out in n.output}
    by_op: dict[str, Counter] = {}
    glue = 0
    for node in nodes:
        if node.op_type in QUANT_GLUE:
            glue += 1
            continue
        # QDQ format: a float op fed by DequantizeLinear on its data input runs as int8 once ORT fuses it.
        quantized = node.op_type in QOPERATOR_OPS or (node.input and node.input[0] in dq_outputs)
        by_op.setdefault(node.op_type, Counter())["quantized" if quantized else "float"] += 1
    table = {op: {"quantized": c["quantized"], "float": c["float"]} for op, c in sorted(by_op.items())}
    return {"by_op": table, "quantized_nodes": sum(v["quantized"] for v in table.values()),
            "float_nodes": sum(v["float"] for v in table.values()), "quant_glue_nodes": glue}


def _per_example(quality):
    """Per-example scores of a QualityResult (``per_example``) or of a plain sequence; None when there are none."""
    import numpy as np

    scores = getattr(quality, "per_example", quality)
    return None if scores is None else np.asarray(scores, dtype=np.float64)


def diagnose(parent_row: dict, row: dict, variant=None, accuracy_tolerance_pts: float = 1.0,
             slower_margin: float = 1.0, parent_quality=None, quality=None) -> dict:
    """Flags for one measured variant against its parent's row (both from ``measure_variant``).

    Args:
        parent_row / row: result rows with ``latency_p50_ms`` and (optionally) ``quality``.
        variant: the variant itself, for node counts / providers in its ``meta``.
        accuracy_tolerance_pts: largest acceptable quality drop, in points (accuracy x 100).
        slower_margin: flag as slower when ``p50 > parent p50 * slower_margin``.
        parent_quality / quality: the two variants' per-example scores on the same examples (``QualityResult``s
            from ``task.evaluate``, or sequences). With them the drop is a paired bootstrap difference: its 95% CI is
            ``quality_drop_ci_pts``, and a drop whose CI contains 0 is reported as ``"no measurable loss"`` (and is
            never flagged), not as a number.

    Returns:
        ``{"speedup": x, "quality_drop_pts": d or "no measurable loss", "quality_drop_ci_pts": [low, high] (paired),
        "flags": [{"flag", "detail", "likely_reasons"}...], "isa": ...}``
    """
    from workbench.util.stats import describe_drop, measurable, paired_quality_drop
    from workbench.runtime.cpu import cpu_isa

    meta = getattr(variant, "meta", {}) or {}
    isa = cpu_isa()
    out = {"speedup": round(parent_row["latency_p50_ms"] / row["latency_p50_ms"], 3), "isa": isa,
           "providers": meta.get("providers"), "flags": []}
    parent_scores, scores = _per_example(parent_quality), _per_example(quality)
    higher = row.get("higher_is_better", True)
    scale = 100 if row.get("metric") == "accuracy" else 1
    if parent_scores is not None and scores is not None:
        drop, low, high = paired_quality_drop(parent_scores, scores, higher, scale)
        out["quality_drop_pts"] = describe_drop(drop, low, high, scale=1, digits=3)
        out["quality_drop_ci_pts"] = [round(low, 3), round(high, 3)]
        flagged = measurable(low, high) and drop > accuracy_tolerance_pts
        detail = f"quality drops {drop:.2f} pts, paired 95% CI [{low:.2f}, {high:.2f}]"
    elif "quality" in row and "quality" in parent_row:
        drop = (1 if higher else -1) * (parent_row["quality"] - row["quality"]) * scale
        out["quality_drop_pts"] = round(drop, 3)
        flagged, detail = drop > accuracy_tolerance_pts, f"quality drops {drop:.2f} pts"
    else:
        flagged = False
    if flagged:
        out["flags"].append({"flag": "accuracy_loss", "detail": f"{detail} (tolerance {accuracy_tolerance_pts})",
                             "likely_reasons": _accuracy_reasons(row, meta, isa)})
    if row["latency_p50_ms"] > parent_row["latency_p50_ms"] * slower_margin:
        out["flags"].append({"flag": "slower_than_parent", "detail": f"p50 {row['latency_p50_ms']:.2f} ms vs parent "
                             f"{parent_row['latency_p50_ms']:.2f} ms", "likely_reasons": _speed_reasons(row, meta, isa)})
    return out


def _accuracy_reasons(row: dict, meta: dict, isa: dict) -> list[str]:
    config = row.get("config") or {}
    reasons = []
    if not config.get("per_channel", True):
        reasons.append("per-tensor weight scales: try per_channel=True")
    if (meta.get("calibration") or {}).get("method", config.get("method")) == "minmax":
        reasons.append("MinMax calibration stretches ranges to activation outliers: try percentile or entropy")
    if not isa["vnni"] and not config.get("reduce_range", True):
        reasons.append("u8s8 int8 without VNNI can saturate (vpmaddubsw): try reduce_range=True")
    reasons.append("a few sensitive layers (often the classifier head or attention output): run "
                   "workbench.steps.quantize.sensitivity.layer_sensitivity and exclude the suggested nodes")
    return reasons


def _speed_reasons(row: dict, meta: dict, isa: dict) -> list[str]:
    reasons = []
    counts = meta.get("node_counts") or {}
    if counts and counts.get("quantized_nodes", 0) < counts.get("float_nodes", 0) / 4:
        reasons.append(f"few ops quantised ({counts['quantized_nodes']} of "
                       f"{counts['quantized_nodes'] + counts['float_nodes']}): float ops dominate")
    if counts.get("quant_glue_nodes", 0) > counts.get("quantized_nodes", 1) * 2:
        reasons.append("many QuantizeLinear/DequantizeLinear nodes that ORT could not fuse: (de)quantisation overhead")
    if not isa["vnni"]:
        reasons.append("no VNNI/AMX on this CPU: int8 GEMMs use AVX2 (vpmaddubsw), at best ~2x over fp32 GEMMs")
    if row.get("batch_size", 1) * row.get("seq_len", 1) <= 32:
        reasons.append("tiny batch x sequence: per-call overhead (activation quantisation, session) outweighs GEMM savings")
    if "CPUExecutionProvider" in (meta.get("providers") or [])[:1] and row.get("device") == "cuda":
        reasons.append(meta.get("provider_note", "GPU requested but ran on CPU"))
    return reasons or ["unknown: profile with workbench.runtime.profile.op_time_profile"]


def format_report(diag: dict, counts: dict | None = None) -> str:
    """Human-readable summary of :func:`diagnose` (and optionally :func:`node_counts`)."""
    isa = diag["isa"]
    drop = diag.get("quality_drop_pts")
    if isinstance(drop, (int, float)):
        drop = f"quality drop {drop:.2f} pts"
    if drop is not None and diag.get("quality_drop_ci_pts"):
        drop += " (paired 95% CI [{:.2f}, {:.2f}])".format(*diag["quality_drop_ci_pts"])
    lines = [f"speed-up vs parent: {diag['speedup']:.2f}x" + (f", {drop}" if drop is not None else ""),
             f"CPU: {isa['cpu']} | AVX2 {isa['avx2']} AVX-512 {isa['avx512']} VNNI {isa['vnni']} AMX {isa['amx']}",
             f"providers: {diag.get('providers')}"]
    if counts:
        lines.append(f"nodes: {counts['quantized_nodes']} quantised, {counts['float_nodes']} float, "
                     f"{counts['quant_glue_nodes']} Q/DQ glue")
        lines += [f"  {op:28s} int8 {c['quantized']:4d}  float {c['float']:4d}" for op, c in counts["by_op"].items()
                  if c["quantized"] or op in ("MatMul", "Gemm", "Attention", "Gather")]
    for flag in diag["flags"]:
        lines.append(f"FLAG {flag['flag']}: {flag['detail']}")
        lines += [f"  - {r}" for r in flag["likely_reasons"]]
    return "\n".join(lines)
