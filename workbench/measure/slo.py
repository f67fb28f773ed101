"""SLO reading of a batching sweep: the largest batch whose tail latency meets a target, and the knee of the curve.

Every percentile is read from the point's own timed calls (p50/p90/p95/p99 columns); none is interpolated. A
percentile needs ``timing.MIN_SAMPLES`` calls behind it (200 for p99); when a point lacks them the reading uses the
highest percentile every point of the line supports and says which (``SLOResult.percentile_used``). Points whose
timing windows never agreed (``stable`` False) are not used, and the result says which were skipped. The knee is
the smallest batch that already reaches ``knee_fraction`` (90%) of the best measured throughput: past it, bigger
batches buy little and cost latency.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from workbench.measure.batching import sweep_rows
from workbench.measure.timing import MIN_SAMPLES, PERCENTILES, highest_percentile, row_percentile


def _check_percentile(percentile: str) -> None:
    if percentile not in PERCENTILES:
        raise ValueError(f"percentile {percentile!r} unknown: use one of {PERCENTILES}")


def tail_latency_ms(row: dict, percentile: str = "p99") -> float | None:
    """Latency of ``row`` at ``percentile``, measured from its timed calls; None when too few calls support it."""
    _check_percentile(percentile)
    return row_percentile(row, percentile)


def stable_points(points: list[dict]) -> tuple[list[dict], list[str]]:
    """(points fit to plan on, a note per point left out): a point whose windows never agreed (``stable`` False)
    measured a machine that was changing under it, so its percentiles do not describe the variant."""
    keep, notes = [], []
    for r in points:
        if r.get("stable") is False:
            spread, windows = r.get("window_spread"), r.get("n_windows")
            why = (f"only {windows} timing window(s), 3 needed to judge it: give it a longer point_seconds"
                   if windows is not None and windows < 3 else
                   f"window medians differ by x{spread:.2f}: re-sweep it on a quiet machine" if spread else
                   "re-sweep it on a quiet machine")
            notes.append(f"skipped batch {r['batch_size']}: unstable timing ({why})")
        else:
            keep.append(r)
    return keep, notes


def plannable_points(points: list[dict], allow_unstable: bool = False) -> tuple[list[dict], list[str]]:
    """(points to plan on, notes): the stable points; when none is stable and ``allow_unstable``, all of them,
    with a note that says the plan is provisional. Without ``allow_unstable`` that case is a ValueError."""
    stable, notes = stable_points(points)
    if stable:
        return stable, notes
    if not allow_unstable:
        raise ValueError("every swept point is unstable (stable=False): " + "; ".join(notes)
                         + " (re-sweep on a quieter machine, or allow unstable points to get a provisional plan)")
    return points, [f"PROVISIONAL: every swept point was unstable ({len(points)} points); the plan reads them "
                    "anyway because unstable points were allowed: re-sweep on a quiet machine before serving"]


def readable_percentile(points: list[dict], percentile: str) -> tuple[str, str | None]:
    """(percentile to read, a note when it is not ``percentile``): the highest one at or below ``percentile`` that
    every point has enough timed calls for. A ValueError when not even p50 is there."""
    used = highest_percentile(points, percentile)
    if used is None:
        raise ValueError("these sweep rows hold no latency percentile to read (not even p50): re-run the sweep")
    if used == percentile:
        return used, None
    short = [r for r in points if row_percentile(r, percentile) is None]
    calls = ", ".join(f"batch {r['batch_size']} n={r.get('n_calls', '?')}" for r in short)
    return used, (f"{percentile} needs >= {MIN_SAMPLES[percentile]} timed calls per point ({calls}): read {used} "
                  f"instead; sweep with SweepConfig(percentile={percentile!r}) and a longer point_seconds for "
                  f"{percentile}")


@dataclass(frozen=True)
class SLOResult:
    """What a latency target allows.

    ``feasible`` is False when not even the smallest measured batch meets the target; ``reason`` then says by how
    much it misses. ``batch_size``/``throughput_per_s``/``latency_ms`` describe the largest batch that meets it.
    ``percentile_used`` is the percentile actually read (lower than ``percentile`` when the points lack the calls
    for it); ``notes`` say why, and which unstable points were skipped.
    """

    target_ms: float
    percentile: str
    feasible: bool
    batch_size: int | None
    throughput_per_s: float | None
    latency_ms: float | None
    knee_batch_size: int | None
    knee_throughput_per_s: float | None
    max_throughput_per_s: float | None
    seq_len: int | None
    reason: str
    percentile_used: str | None = None
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return asdict(self)


def knee(rows: list[dict], knee_fraction: float = 0.9) -> dict | None:
    """Smallest-batch row reaching ``knee_fraction`` of the best throughput among ``rows`` (successful points)."""
    rows = [r for r in rows if r.get("throughput_per_s") is not None]
    if not rows:
        return None
    best = max(r["throughput_per_s"] for r in rows)
    return min((r for r in rows if r["throughput_per_s"] >= knee_fraction * best), key=lambda r: r["batch_size"])


def slo_point(rows, target_ms: float, percentile: str = "p99", variant_id: str | None = None,
              seq_len: int | None = None, knee_fraction: float = 0.9, allow_unstable: bool = False) -> SLOResult:
    """The largest batch meeting ``percentile`` latency <= ``target_ms``, its throughput, and the knee.

    Args:
        rows: results rows (a ResultsTable or list); only successful, stable batching-sweep rows are used.
        target_ms: the latency objective in ms.
        percentile: "p50", "p90", "p95" or "p99" (read lower, and said so, when the points lack the calls for it).
        variant_id / seq_len: which variant and sequence length to read (needed when the table holds several).
        allow_unstable: when no point is stable, read them all and say the result is provisional (else an error).

    Example:
        >>> slo = slo_point(table, target_ms=50, percentile="p95")        # doctest: +SKIP
        >>> slo.feasible, slo.batch_size, slo.throughput_per_s
    """
    if not target_ms or target_ms <= 0:
        raise ValueError(f"SLO target {target_ms!r} ms must be a positive number")
    _check_percentile(percentile)
    points = sweep_rows(list(rows), variant_id, seq_len)
    if not points:
        raise ValueError("no successful batching-sweep rows to read the SLO from: run `workbench sweep` first "
                         "(or pick the variant_id / seq_len that was swept)")
    lines = {(r.get("seq_len"), r.get("output_len")) for r in points}
    if len(lines) > 1:
        raise ValueError(f"the rows hold several sweep lines (seq_len, output_len) {sorted(lines, key=str)}: "
                         "pass seq_len= (and filter by output_len) to pick one")
    points, notes = plannable_points(points, allow_unstable)
    used, note = readable_percentile(points, percentile)
    notes = ([note] if note else []) + notes
    said = "".join(f"{n}; " for n in notes)
    k = knee(points, knee_fraction)
    ok = [r for r in points if tail_latency_ms(r, used) <= target_ms]
    common = dict(target_ms=target_ms, percentile=percentile, knee_batch_size=k["batch_size"],
                  knee_throughput_per_s=k["throughput_per_s"], seq_len=points[0].get("seq_len"),
                  max_throughput_per_s=max(r["throughput_per_s"] for r in points), percentile_used=used,
                  notes=tuple(notes))
    if not ok:
        smallest = points[0]
        return SLOResult(feasible=False, batch_size=None, throughput_per_s=None, latency_ms=None, **common,
                         reason=f"{said}no feasible point: even batch {smallest['batch_size']} has {used} "
                                f"{tail_latency_ms(smallest, used):.2f} ms > target {target_ms} ms; "
                                "relax the target or use a faster variant/device")
    best = max(ok, key=lambda r: r["batch_size"])
    lat = tail_latency_ms(best, used)
    return SLOResult(feasible=True, batch_size=best["batch_size"], throughput_per_s=best["throughput_per_s"],
                     latency_ms=round(lat, 4), **common,
                     reason=f"{said}batch {best['batch_size']} meets {used} {lat:.2f} ms <= {target_ms} ms")


__all__ = ["slo_point", "SLOResult", "knee", "tail_latency_ms", "stable_points", "readable_percentile"]
