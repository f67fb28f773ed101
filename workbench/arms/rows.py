"""The one row builder for arms: timing figures, speed-up against the baseline, quality and its paired drop with the
CI, eligibility, the skip / fail reason, build figures and the ISA, in one flat dict per arm.

Row keys (absent figures are None, never 0):
    arm, kind, baseline, status ("measured" | "not available here" | "skipped" | "failed"), reason,
    p50_ms, p90_ms, min_ms, n_calls, stable, first_call_ms, speedup (baseline p50 / arm p50), speedup_min,
    metric, quality, quality_ci, quality_n, quality_scored_by / quality_kl_vs_fp32 (when the quality says: the path
    whose logits were scored, the KL against fp32), drop_pts, drop_ci_pts, drop ("no measurable loss" or the drop),
    report_quality, report_drop_pts, report_drop_ci_pts, report_drop (held-out split, when the arm has one),
    eligible (``arms.eligibility``), the build's ``meta`` (compile_seconds, ...) and ``isa`` when given.

Drops are in points for accuracy (x 100) and in the metric's own unit otherwise (perplexity: its increase); positive
is worse, and the CI is a paired bootstrap on the same examples (``measure.quality.paired_quality_drop``).
"""
from __future__ import annotations

MEASURED, NOT_AVAILABLE, SKIPPED, FAILED = "measured", "not available here", "skipped", "failed"


def quality_drop(base_quality, quality, prefix: str = "") -> dict:
    """``{prefix}quality``, CI, n, and the paired drop of ``quality`` against ``base_quality`` with its 95% CI."""
    import numpy as np

    from workbench.util.stats import describe_drop, paired_quality_drop

    out = {f"{prefix}quality": round(quality.value, 4), f"{prefix}quality_ci": [round(quality.ci_low, 4),
                                                                               round(quality.ci_high, 4)],
           f"{prefix}quality_n": quality.n_examples}
    if not prefix:
        out["metric"] = quality.metric
    for key in ("scored_by", "kl_vs_fp32"):   # which path gave the logits (eager, compiled, ONNX, ...), KL vs fp32
        if (quality.extra or {}).get(key) is not None:
            out[f"{prefix}quality_{key}"] = quality.extra[key]
    if base_quality is None or quality is base_quality:
        return out
    scale = 100.0 if quality.metric == "accuracy" else 1.0
    drop, low, high = paired_quality_drop(np.asarray(base_quality.per_example, dtype=float),
                                          np.asarray(quality.per_example, dtype=float),
                                          base_quality.higher_is_better, scale)
    return {**out, f"{prefix}drop_pts": round(drop, 3), f"{prefix}drop_ci_pts": [round(low, 3), round(high, 3)],
            f"{prefix}drop": describe_drop(drop, low, high, scale=1, digits=2)}


def arm_row(arm, status: str, reason: str | None = None, timing=None, baseline_timing=None,
            first_ms: float | None = None, quality=None, base_quality=None, report_quality=None,
            base_report_quality=None, meta: dict | None = None, isa: dict | None = None,
            tolerance: float | None = None, quality_measured: bool = True) -> dict:
    """One arm's row.

    Args:
        arm: the ``arms.base.Arm``.
        status: ``MEASURED``, ``NOT_AVAILABLE``, ``SKIPPED`` or ``FAILED``; reason: why (default: the arm's).
        timing, baseline_timing: ``measure.interleaved.ArmTiming`` of the arm and of the baseline in the same run.
        first_ms: its first (warm-up) call, reported apart.
        quality, base_quality: ``QualityResult`` of the arm and of the baseline on the same examples (selection).
        report_quality, base_report_quality: the same on the held-out split the figure is reported on.
        meta: the build's figures; isa: the ISA summary the arm was judged on.
        tolerance: when given, ``eligible`` is filled by the one rule (``arms.eligibility``).
        quality_measured: False when this run skipped quality (then ``eligible`` is None for non-baseline arms).
    """
    from workbench.arms.eligibility import eligibility

    row = {"arm": arm.name, "kind": arm.kind, "baseline": arm.baseline, "status": status,
           "reason": arm.reason if reason is None else reason}
    for key in ("p50_ms", "p90_ms", "min_ms", "n_calls", "stable", "first_call_ms", "speedup", "speedup_min",
                "metric", "quality", "quality_ci", "quality_n", "drop_pts", "drop_ci_pts", "drop", "eligible"):
        row[key] = None
    if timing is not None:
        row.update(p50_ms=round(timing.p50_ms, 3), p90_ms=round(timing.p90_ms, 3), min_ms=round(timing.min_ms, 3),
                   n_calls=timing.n_calls, stable=timing.stable)
        if baseline_timing is not None:
            row.update(speedup=round(baseline_timing.p50_ms / timing.p50_ms, 3),
                       speedup_min=round(baseline_timing.min_ms / timing.min_ms, 3))
    if first_ms is not None:
        row["first_call_ms"] = round(first_ms, 3)
    if quality is not None:
        row.update(quality_drop(None if arm.baseline else base_quality, quality))
    if report_quality is not None:
        row.update(quality_drop(None if arm.baseline else base_report_quality, report_quality, prefix="report_"))
    if tolerance is not None and status == MEASURED:
        row["eligible"] = eligibility(row, tolerance, quality_measured)
    for key, value in (meta or {}).items():
        row.setdefault(key, value)
    if isa is not None:
        row["isa"] = isa
    return row


def describe_row(row: dict, width: int = 26) -> str:
    """One readable line per row: the figures when measured, else the status and the reason."""
    head = f"  {row['arm']:{width}s}"
    if row["status"] != MEASURED:
        return f"{head} {row['status']}: {row['reason']}"
    if row["baseline"]:
        drop = "baseline"
    elif row["drop_ci_pts"] is None:
        drop = "quality not measured"
    else:
        value = row["drop"] if isinstance(row["drop"], str) else f"drop {row['drop']:.2f}"
        drop = "{} [{:.2f}, {:.2f}]".format(value, *row["drop_ci_pts"])
    extra = f", compile {row['compile_seconds']:.1f} s" if row.get("compile_seconds") else ""
    unstable = "" if row["stable"] else " (unstable)"
    return (f"{head} p50 {row['p50_ms']:8.2f} ms{unstable}  {row['speedup']:5.2f}x  {drop}  "
            f"({row['reason']}{extra})")


__all__ = ["arm_row", "describe_row", "quality_drop", "MEASURED", "NOT_AVAILABLE", "SKIPPED", "FAILED"]
