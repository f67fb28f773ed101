"""The reference an optimize run is judged against: every arm of the same catalogue built, every arm's quality on the
same validation examples (eligible by the same rule), every arm x every batch size of the grid swept, and the
cheapest eligible arm at the SLO. ``benchmarks/optimize.py`` times it beside :func:`workbench.optimize.optimize`
(``time_fraction``) and prices the pick against its best (``regret_pct``).

It is deliberately naive (no screen, no halving): what a user would do by hand with every arm and every batch size.
"""
from __future__ import annotations

import time


def _quality_row(name: str, baseline: str, built, base_q, figures) -> dict:
    """An arm's quality figures against the baseline (``figures``: the task kind's drop), or why it has none."""
    row = {"arm": name, "baseline": name == baseline}
    try:
        q = base_q if name == baseline else built.quality()
        row.update(figures(None if name == baseline else base_q, q))
    except Exception as exc:  # noqa: BLE001 - an arm whose quality fails is not eligible
        row["quality_error"] = f"{type(exc).__name__}: {exc}"
    return row


def _costs_by_batch(rows: list[dict], instance: str, cost) -> dict:
    """Batch size -> the cost per 1M on ``instance`` at that sweep point's throughput (SLO met or not): what the
    benchmark prices a pick of the best arm at another batch size with."""
    from workbench.optimize.search import usd_per_1m

    return {r["batch_size"]: usd_per_1m(r["throughput_per_s"], (instance,), cost)[instance]
            for r in rows if not r.get("failed") and r.get("throughput_per_s")}


def _summary(out: dict, instances, start: float, build_s: float, prepared) -> dict:
    """The exhaustive run's result: the cheapest eligible arm at the SLO on the first instance, and every arm."""
    first = instances[0]
    ok = {n: r for n, r in out.items() if r["eligible"] and r["slo"] and r["slo"].get("feasible")}
    best = min(ok, key=lambda n: ok[n]["slo"]["usd_per_1m"][first]) if ok else None
    return {"wall_s": round(time.perf_counter() - start, 1), "build_seconds": round(build_s, 1), "arms": out,
            "best": best, "best_usd_per_1m": ok[best]["slo"]["usd_per_1m"][first] if best else None,
            "not_run": {n: why for n, (_s, why) in prepared.not_run.items()}}


def exhaustive(task_kind: str, slo_ms: float, percentile: str, max_drop: float, instances, threads=None,
               only=None) -> dict:
    """Every arm built, every arm's quality, every arm x batch size swept; the cheapest eligible arm at the SLO.
    ``only``: arm names to cover (the baseline always); default the whole catalogue.

    The task kind's adapter (``optimize.kinds``) says what the search says for it: the catalogue, the context, what
    a sweep point is (a batch of inputs; a whole greedy request of B sequences, ITL at the percentile), the quality
    drop and the cost unit, so both sides of the benchmark measure alike."""
    from types import SimpleNamespace

    from workbench.arms.eligibility import within_tolerance
    from workbench.arms.runner import build_arms
    from workbench.optimize.candidates import catalogue
    from workbench.optimize.kinds import kind_for
    from workbench.optimize.search import Settings, read_slo
    from workbench.runtime.cpu import isa_summary
    from workbench.tasks import get_task
    from workbench.util.files import artifacts_root
    from workbench.util.settings import small_mode

    start = time.perf_counter()
    kind = kind_for(task_kind, small_mode())
    st = kind.settings(Settings.for_mode(small_mode()))
    folder = artifacts_root() / f"bench-optimize-exhaustive-{task_kind}"
    task = get_task(task_kind)
    arms, _ = catalogue(task_kind, isa_summary(), kind.calibration(task, st, folder), None)
    ctx = kind.context(task, st, threads, folder, lambda message: None)
    t = time.perf_counter()
    prepared = build_arms(arms, ctx, only=only)
    build_s = time.perf_counter() - t
    baseline = next(a.name for a in arms if a.baseline)
    base_q = prepared.built[baseline].quality()
    s = SimpleNamespace(task=task, settings=st, ctx=ctx, build=lambda n: prepared.built[n], slo_ms=slo_ms,
                        percentile=percentile, device=ctx.device)
    out = {}
    try:
        for name, built in prepared.built.items():
            row = _quality_row(name, baseline, built, base_q, kind.quality_figures)
            rows = []
            for batch in st.grid:
                try:
                    rows.append(kind.point(s, name, batch))
                except Exception as exc:  # noqa: BLE001 - a batch an arm cannot run is a missing point
                    rows.append({"batch_size": batch, "failed": True, "reason": f"{type(exc).__name__}: {exc}"})
            reading = read_slo(rows, slo_ms, percentile, instances, kind.cost)
            out[name] = {"eligible": within_tolerance(row, max_drop), "drop_ci_pts": row.get("drop_ci_pts"),
                         "slo": reading, "points": len(rows), "usd_per_1m_by_batch": _costs_by_batch(
                             rows, instances[0], kind.cost)}
    finally:
        prepared.close()
    return _summary(out, instances, start, build_s, prepared)


def side_by_side(task_kind: str, slo_ms: float, percentile: str, max_drop: float, instances, batches: dict,
                 study: str = "optimize-side-by-side", rounds: int | None = None) -> dict:
    """Arms, each at its own batch size (``{arm: batch}``), timed side by side in one interleaved run by the
    search's own :func:`optimize.search.head_to_head` (``rounds``: default the search's): arm -> cost per 1M on the
    first instance. ``benchmarks/optimize.py`` prices the pick against the exhaustive best with it, free of the drift
    between the two runs' separate points."""
    from workbench.optimize import _start, run_settings
    from workbench.optimize.budget import Budget
    from workbench.optimize.search import head_to_head
    from workbench.optimize.store import Store
    from workbench.util.files import artifacts_root

    budget_s = 600.0
    settings = run_settings(task_kind, None, None, slo_ms, percentile, max_drop, "cpu", budget_s, instances, None)
    store = Store(artifacts_root() / study, settings, redo=True)
    s = _start(task_kind, None, None, settings, store, Budget(budget_s), lambda event: None, lambda message: None,
               None)
    try:
        rows = head_to_head(s, batches, rounds)
    finally:
        s.close()
    if not rows:
        raise RuntimeError(f"the side-by-side run of {sorted(batches)} measured nothing: {s.skipped_for_budget}")
    return {name: row["usd_per_1m"][settings["instances"][0]] for name, row in rows.items()}


__all__ = ["exhaustive", "side_by_side"]
