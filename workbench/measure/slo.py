"""SLO reading of a batching sweep: the largest batch whose tail latency meets a target, and the knee of the curve.

The sweep measures p50/p90/p99 per point; a p95 target is read by interpolating between p90 and p99 (linear in
the percentile), which is conservative for right-skewed latency. The knee is the smallest batch that already reaches
``knee_fraction`` (90%) of the best measured throughput: past it, bigger batches buy little and cost latency.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from workbench.measure.batching import sweep_rows
from workbench.measure.timing import PERCENTILES


def _check_percentile(percentile: str) -> None:
    if percentile not in PERCENTILES:
        raise ValueError(f"percentile {percentile!r} unknown: use one of {PERCENTILES}")


def tail_latency_ms(row: dict, percentile: str = "p99") -> float:
    """Latency of ``row`` at ``percentile`` (p95 interpolated between the measured p90 and p99)."""
    _check_percentile(percentile)
    if percentile == "p95":
        p90, p99 = row["latency_p90_ms"], row["latency_p99_ms"]
        return p90 + (p99 - p90) * (95 - 90) / (99 - 90)
    return row[f"latency_{percentile}_ms"]


@dataclass(frozen=True)
class SLOResult:
    """What a latency target allows.

    ``feasible`` is False when not even the smallest measured batch meets the target; ``reason`` then says by how
    much it misses. ``batch_size``/``throughput_per_s``/``latency_ms`` describe the largest batch that meets it.
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

    def as_dict(self) -> dict:
        return asdict(self)


def knee(rows: list[dict], knee_fraction: float = 0.9) -> dict | None:
    """Smallest-batch row reaching ``knee_fraction`` of the best throughput among ``rows`` (successful points)."""
    if not rows:
        return None
    best = max(r["throughput_per_s"] for r in rows)
    return min((r for r in rows if r["throughput_per_s"] >= knee_fraction * best), key=lambda r: r["batch_size"])


def slo_point(rows, target_ms: float, percentile: str = "p99", variant_id: str | None = None,
              seq_len: int | None = None, knee_fraction: float = 0.9) -> SLOResult:
    """The largest batch meeting ``percentile`` latency <= ``target_ms``, its throughput, and the knee.

    Args:
        rows: results rows (a ResultsTable or list); only successful batching-sweep rows are used.
        target_ms: the latency objective in ms.
        percentile: "p50", "p90", "p95" or "p99".
        variant_id / seq_len: which variant and sequence length to read (needed when the table holds several).

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
    k = knee(points, knee_fraction)
    ok = [r for r in points if tail_latency_ms(r, percentile) <= target_ms]
    common = dict(target_ms=target_ms, percentile=percentile, knee_batch_size=k["batch_size"],
                  knee_throughput_per_s=k["throughput_per_s"], seq_len=points[0].get("seq_len"),
                  max_throughput_per_s=max(r["throughput_per_s"] for r in points))
    if not ok:
        smallest = points[0]
        return SLOResult(feasible=False, batch_size=None, throughput_per_s=None, latency_ms=None, **common,
                         reason=f"no feasible point: even batch {smallest['batch_size']} has {percentile} "
                                f"{tail_latency_ms(smallest, percentile):.2f} ms > target {target_ms} ms; "
                                "relax the target or use a faster variant/device")
    best = max(ok, key=lambda r: r["batch_size"])
    lat = tail_latency_ms(best, percentile)
    return SLOResult(feasible=True, batch_size=best["batch_size"], throughput_per_s=best["throughput_per_s"],
                     latency_ms=round(lat, 4), **common,
                     reason=f"batch {best['batch_size']} meets {percentile} {lat:.2f} ms <= {target_ms} ms")


__all__ = ["slo_point", "SLOResult", "knee", "tail_latency_ms"]
