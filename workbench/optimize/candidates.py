"""Which arms an optimize run considers: the arm catalogues for this task kind and device / ISA, plus pluggable
providers (distillation) that join only when their module imports and their extra time fits the budget.

A provider is ``(name, provider(task_kind, isa, calibration, budget, device) -> (arms, skipped))``: ``skipped`` lists
what it left out and why (for lack of budget, or not on this device; it goes to ``skipped_for_budget``). ``PROVIDERS`` is the list the search reads; a new
family of candidates is one more entry, nothing else changes.
"""
from __future__ import annotations


def catalogue(task_kind: str, isa: dict, calibration, budget=None, device: str = "cpu") -> tuple[list, list[str]]:
    """The arm catalogue for this task kind, ISA and device, from its kind adapter (the exhaustive reference covers
    exactly these); a kind without one is refused."""
    from workbench.optimize.kinds import kind_for
    from workbench.util.settings import small_mode

    return kind_for(task_kind, small_mode(), device).catalogue(isa, calibration), []


def _distilled(task_kind: str, isa: dict, calibration, budget, device: str = "cpu") -> tuple[list, list[str]]:
    """The distilled-student arms of this task kind (its adapter's ``student_arms``: the student through the kind's
    own arms) when the adapter takes them on this device and their training fits."""
    from workbench.optimize.kinds import kind_for
    from workbench.util.settings import small_mode

    kind = kind_for(task_kind, small_mode(), device)
    why = kind.students_missing
    if why:
        return [], [f"distilled student: {why}"]
    try:
        arms, module = kind.student_arms(isa, calibration)
    except ImportError:
        return [], []
    try:
        need = float(module.training_seconds_estimate(task_kind))
    except (NotImplementedError, ValueError):   # no recipe for this task kind: not a candidate, not a budget matter
        return [], []
    if budget is not None and not budget.fits(need / DISTILL_SHARE):
        return [], [f"distilled student: its training needs ~{need:.0f} s, more than {DISTILL_SHARE:.0%} of the "
                    f"{max(budget.left_s, 0):.0f} s left (the rest is kept for quality, sweeps and confirmation); "
                    f"pass --budget {int(need / DISTILL_SHARE + budget.elapsed_s) + 1}s or more to include it"]
    return arms, []


# Training is admitted only when it takes at most this share of the budget left: a student that eats the budget
# leaves no time to check its quality or sweep any arm, and the run would end with no pick at all.
DISTILL_SHARE = 0.35

PROVIDERS = [("catalogue", catalogue), ("distilled", _distilled)]


def candidates(task_kind: str, isa: dict, calibration=None, budget=None, device: str = "cpu") -> tuple[list, list[str]]:
    """(arms, skipped_for_budget) for this run; exactly one baseline, names unique (first provider wins)."""
    arms, skipped, seen = [], [], set()
    for _name, provider in PROVIDERS:
        found, left = provider(task_kind, isa, calibration, budget, device)
        skipped += left
        for arm in found:
            if arm.name not in seen:
                seen.add(arm.name)
                arms.append(arm)
    return arms, skipped


__all__ = ["candidates", "catalogue", "PROVIDERS"]
