"""The one rule that decides which arms may be picked, used by every benchmark, panel and CLI verb.

An arm is *within tolerance* when the upper end of the paired 95% CI of its quality drop against the baseline
(``drop_ci_pts[1]``, same examples, resampled together) is at most the tolerance. The baseline always is. A CI that
contains 0 is not enough: a drop of 3 points with CI [-1, 3] is "no measurable loss" at this sample size, yet it may
be 3 points, so it is NOT within a 1-point tolerance.

When quality was not measured at all (``--skip-ppl``), nothing is within tolerance: :func:`pick` still names the
fastest arm, flagged ``checked=False`` with the reason, so no report can call it a safe pick.

Example:
    >>> within_tolerance({"drop_ci_pts": [-1.0, 3.0]}, tolerance=1.0)
    False
    >>> within_tolerance({"drop_ci_pts": [-0.5, 0.8]}, tolerance=1.0)
    True
"""
from __future__ import annotations

from dataclasses import dataclass

UNCHECKED = "quality was not measured: nothing is known to be within tolerance, the pick is unchecked"


def within_tolerance(row: dict, tolerance: float) -> bool:
    """The rule: baseline, or the upper end of the paired CI of the drop at most ``tolerance`` (False when no CI)."""
    if row.get("baseline"):
        return True
    ci = row.get("drop_ci_pts")
    return ci is not None and ci[1] is not None and ci[1] <= tolerance


def eligibility(row: dict, tolerance: float, quality_measured: bool = True) -> bool | None:
    """The row's ``eligible`` value: True / False by :func:`within_tolerance`; None for non-baseline arms when quality
    was not measured in this run (unknown, not False)."""
    if row.get("baseline"):
        return True
    return within_tolerance(row, tolerance) if quality_measured else None


@dataclass(frozen=True)
class Pick:
    """The chosen arm: its row, whether its quality was checked against the tolerance, and a sentence saying why."""

    row: dict | None
    checked: bool
    reason: str

    @property
    def arm(self) -> str | None:
        return None if self.row is None else self.row["arm"]


def pick(rows: list[dict], tolerance: float, quality_measured: bool = True, figure: str = "p50_ms") -> Pick:
    """The fastest timed row (lowest ``figure``) within tolerance; with ``quality_measured=False`` the fastest timed
    row, unchecked. Rows without the figure (skipped, failed) never count. ``Pick.row`` is None when no row is timed.

    Example:
        >>> rows = [{"arm": "fp32", "baseline": True, "p50_ms": 10.0}, {"arm": "int8", "p50_ms": 4.0,
        ...         "drop_ci_pts": [-1.0, 3.0]}]
        >>> pick(rows, 1.0).arm, pick(rows, 1.0, quality_measured=False).checked
        ('fp32', False)
    """
    timed = [r for r in rows if r.get(figure) is not None]
    if not quality_measured:
        best = min(timed, key=lambda r: r[figure]) if timed else None
        return Pick(best, False, UNCHECKED)
    ok = [r for r in timed if within_tolerance(r, tolerance)]
    if not ok:
        return Pick(None, True, f"no timed arm is within tolerance ({tolerance:g}), not even the baseline")
    best = min(ok, key=lambda r: r[figure])
    if best.get("baseline"):
        return Pick(best, True, f"no arm is faster than the baseline with the upper end of its drop CI within "
                                f"{tolerance:g}")
    return Pick(best, True, f"fastest arm whose drop CI ends at {best['drop_ci_pts'][1]:g} <= {tolerance:g}")


__all__ = ["within_tolerance", "eligibility", "pick", "Pick", "UNCHECKED"]
