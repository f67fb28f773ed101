"""The distillation study over the student arms (``arms.distilled``): what ``benchmarks/distillation.py`` and the
distillation panel report beyond ``compare``.

- :func:`retention_tolerance`: the tolerance in points that a minimum retention (e.g. 96% of the teacher's accuracy)
  means for this teacher, from its accuracy on the selection split.
- :func:`retention`: an arm's accuracy / the teacher's, paired on the same examples (bootstrap 95% CI).
- :func:`kd_ablation`: the no-KD student (same student, init and schedule, labels only) against the KD student, paired
  on the same held-out examples: what KD itself buys.
- :func:`study_rows`: ResultsTable rows of the measured arms (timing, size, reported quality with its CI, retention,
  the distilled family, training seconds).
- :func:`run`: catalogue -> tolerance -> ``compare`` (selection, eligibility pick, fresh confirmation) -> ablation ->
  rows and the summary; :func:`summary` the figures a benchmark prints.

Example:
    >>> study = run("text-classification", retention_min=0.96, num_layers=2)      # doctest: +SKIP
    >>> study.summary["stacked_arm"], study.summary["stacked_speedup"]
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from workbench.arms.distilled import PREFIX, STUDENT, TEACHER


def retention_tolerance(ctx, retention_min: float) -> float:
    """Points of accuracy the teacher may lose and keep ``retention_min`` of its accuracy: ``100 x (1 - retention_min)
    x teacher accuracy`` on the selection split (the drop the eligibility rule bounds is in points of that split)."""
    if not 0 < retention_min <= 1:
        raise ValueError(f"retention_min={retention_min}: give a fraction in (0, 1], e.g. 0.96 for 96%")
    split, limit = ctx.options.get("split", "validation"), ctx.options.get("eval_limit")
    try:
        quality = ctx.task.evaluate(ctx.base, split=split, limit=limit)
    except KeyError:
        quality = ctx.task.evaluate(ctx.base, split="test", limit=limit)
    if quality.metric != "accuracy":
        raise ValueError(f"a retention target needs an accuracy metric, the task reports {quality.metric}: "
                         "pass an explicit tolerance (max_drop) instead")
    return round(100 * (1 - retention_min) * quality.value, 3)


def retention(base_quality, quality) -> dict | None:
    """``quality / base_quality`` (accuracy retained) with its paired bootstrap 95% CI; None when either is absent."""
    from workbench.util.stats import paired_bootstrap_ratio

    if base_quality is None or quality is None:
        return None
    ratio, low, high = paired_bootstrap_ratio(quality.per_example, base_quality.per_example)
    return {"retention": round(ratio, 4), "retention_ci": [round(low, 4), round(high, 4)]}


def kd_ablation(result, ctx, **distill_kw) -> dict | None:
    """Train the no-KD student and compare it with the KD student on the report split (else the selection split),
    per example: ``kd_minus_nokd_pts`` with its paired CI and a verdict. None when the KD student was not measured."""
    from workbench.arms.distilled import distill_config, student_variant
    from workbench.util.stats import measurable, paired_bootstrap_diff

    qualities = result.reports if STUDENT in result.reports else result.qualities
    if STUDENT not in qualities:
        return None
    kd = qualities[STUDENT]
    split = ctx.options.get("report_split") if qualities is result.reports else ctx.options.get("split", "validation")
    nokd = student_variant(ctx, distill_config(**distill_kw).no_kd())
    quality = ctx.task.evaluate(nokd, split=split, limit=ctx.options.get("eval_limit"))
    diff, low, high = paired_bootstrap_diff(kd.per_example, quality.per_example)
    return {"split": split, "n": kd.n_examples, "kd_accuracy": round(kd.value, 4),
            "nokd_accuracy": round(quality.value, 4), "kd_minus_nokd_pts": round(100 * diff, 2),
            "kd_minus_nokd_paired_ci_pts": [round(100 * low, 2), round(100 * high, 2)],
            "kd_vs_nokd": ("no measurable difference" if not measurable(low, high)
                           else "KD better" if low > 0 else "no-KD better"),
            "nokd_train_seconds": nokd.meta.get("step_seconds")}


def study_rows(result, ctx, threads: int) -> list[dict]:
    """One results row per measured arm at the timing shape (selection run): ``arms.cpu_study.harness_rows`` plus the
    reported quality's CI, retention against the teacher, the distilled family and the training seconds."""
    from workbench.arms.cpu_study import harness_rows

    rows = harness_rows(result, {"timing": (ctx.inputs, result.selection)}, ctx.task, threads)
    base = result.reports.get(TEACHER) or result.qualities.get(TEACHER)
    for row in rows:
        arm_row = result.row(row["arm"])
        quality = result.reports.get(row["arm"]) or result.qualities.get(row["arm"])
        if row["quality"] is None and quality is not None:   # no report split: the selection figure is the reported
            row.update(quality=round(quality.value, 4), quality_n=quality.n_examples,
                       accuracy_drop_pts=arm_row["drop_pts"], accuracy_drop_ci_pts=arm_row["drop_ci_pts"])
        if quality is not None:
            row.update(quality_ci_low=round(quality.ci_low, 4), quality_ci_high=round(quality.ci_high, 4),
                       higher_is_better=quality.higher_is_better, **(retention(base, quality) or {}))
        row.update(family=arm_row.get("family") or "baseline", speedup=arm_row["speedup"],
                   distill_seconds=arm_row.get("distill_seconds"))
    return rows


@dataclass
class Study:
    """What :func:`run` found: the comparison (built arms kept open until ``close``), the tolerance it picked with,
    the KD ablation, the results rows and the summary."""

    result: object
    tolerance: float
    ablation: dict | None
    rows: list[dict]
    summary: dict = field(default_factory=dict)

    def close(self) -> None:
        self.result.close()


def summary(result, tolerance: float, retention_min: float | None, ablation: dict | None, isa: dict | None,
            load: list[float]) -> dict:
    """The figures of a distillation run: the student alone, the confirmed winner (normally a stacked student arm),
    the KD ablation, the targets and what did not run."""
    base = result.reports.get(TEACHER) or result.qualities.get(TEACHER)

    def quality_of(name):
        return result.reports.get(name) or result.qualities.get(name)

    student = result.row(STUDENT) if any(r["arm"] == STUDENT for r in result.rows) else {}
    s_ret = retention(base, quality_of(STUDENT)) or {}
    win = result.pick.arm
    w_row = result.row(win) if win else {}
    w_ret = retention(base, quality_of(win)) if win else None
    drop_key = "report_drop" if w_row.get("report_drop_ci_pts") is not None else "drop"
    sel, conf = result.selection_speedup, result.confirmed_speedup
    out = {
        "student_retention": s_ret.get("retention"), "student_retention_paired_ci": s_ret.get("retention_ci"),
        "student_speedup": student.get("speedup"), "student_stable": student.get("stable"),
        "stacked_arm": win, "stacked_is_stacked": bool(win and win.startswith(PREFIX)),
        "stacked_speedup": conf, "stacked_selection_speedup": sel,
        "selection_vs_confirmed": round(sel / conf, 3) if sel and conf else None,
        "stacked_retention": (w_ret or {}).get("retention"),
        "stacked_retention_paired_ci": (w_ret or {}).get("retention_ci"),
        "stacked_drop_vs_teacher_pts": w_row.get(drop_key),
        "stacked_drop_paired_ci_pts": w_row.get(f"{drop_key}_ci_pts"),
        "pick_checked": result.pick.checked, "pick_reason": result.pick.reason, "tolerance_pts": tolerance,
        "retention_min": retention_min,
        "target": "stacked >= 4x the teacher at >= 96% retention",
        "target_met": bool(conf and conf >= 4 and w_ret and w_ret["retention"] >= 0.96),
        "quality_split": "test" if result.reports else "validation",
        "skipped": {r["arm"]: r["reason"] for r in result.rows if r["status"] != "measured"},
        "isa": isa, "loadavg_1min": load,
    }
    # The fastest stacked arm whatever its drop: what the pick gave up (or is), with the drop CI that decided it.
    timed = [r for r in result.rows if r["arm"].startswith(PREFIX) and r.get("p50_ms") is not None]
    if timed:
        fast = min(timed, key=lambda r: r["p50_ms"])
        out["fastest_stacked"] = {"arm": fast["arm"], "selection_speedup": fast["speedup"],
                                  "eligible": fast["eligible"], "drop_ci_pts": fast["drop_ci_pts"],
                                  "report_drop_ci_pts": fast.get("report_drop_ci_pts"),
                                  **(retention(base, quality_of(fast["arm"])) or {})}
    if ablation is not None:
        out.update({k: v for k, v in ablation.items() if k.startswith(("kd_", "nokd_"))})
    return out


def run(task="text-classification", batch: int = 1, seq: int = 128, threads: int | None = None,
        retention_min: float | None = 0.96, max_drop: float | None = None, ablation: bool = True,
        eval_limit: int | None = None, calib_examples: int = 128, out_dir: str | None = None,
        report_split: str | None = "test", only=None, skip_kinds=(), rounds: int = 5, seconds: float | None = None,
        isa: dict | None = None, log=None, **distill_kw) -> Study:
    """The whole study. ``max_drop`` (points) overrides the tolerance ``retention_min`` stands for; ``only``: arm
    names to run (the teacher always runs; ``student-fp32`` is added); the built arms stay open (``Study.close``).
    """
    from workbench.arms.distilled import catalogue
    from workbench.arms.runner import compare
    from workbench.runtime.cpu import cpu_isa

    load_start = os.getloadavg()[0]
    if isa is None:
        isa = {k: v for k, v in cpu_isa().items() if k not in ("flags", "cpu")}
    arms, ctx = catalogue(task, batch, seq, threads, eval_limit, calib_examples, out_dir, report_split, isa,
                          log, **distill_kw)
    if max_drop is None and retention_min is None:
        raise ValueError("give a tolerance: retention_min (e.g. 0.96) or max_drop (points of accuracy)")
    tolerance = max_drop if max_drop is not None else retention_tolerance(ctx, retention_min)
    only = None if only is None else set(only) | {STUDENT}
    result = compare(arms, ctx, tolerance, only=only, skip_kinds=skip_kinds, rounds=rounds, seconds=seconds,
                     isa=isa, keep=True)
    try:
        abl = kd_ablation(result, ctx, **distill_kw) if ablation else None
        rows = study_rows(result, ctx, threads or ctx.base.runner.threads)
    except BaseException:
        result.close()
        raise
    load = [round(load_start, 2), round(os.getloadavg()[0], 2)]
    study = Study(result, tolerance, abl, rows)
    study.summary = summary(result, tolerance, None if max_drop is not None else retention_min, abl, isa, load)
    return study


__all__ = ["run", "summary", "study_rows", "kd_ablation", "retention", "retention_tolerance", "Study"]
