"""The question a multi-hardware study answers: which hardware serves this model within the SLO for the least money.

Each row is priced with its own instance (the price table's $/hour for the hardware it ran on), so a GPU row and a
CPU row compare in dollars, not in milliseconds.
"""
from __future__ import annotations

from collections import defaultdict


def priced_rows(rows, utilisation: float = 1.0, prices=None) -> list[dict]:
    """Successful rows with cost columns from each row's own ``instance`` (rows without one are left out)."""
    from workbench.measure.cost import add_costs

    by_instance = defaultdict(list)
    for row in rows:
        if row.get("instance") and not row.get("failed") and row.get("throughput_per_s"):
            by_instance[row["instance"]].append(row)
    return [r for instance, group in by_instance.items() for r in add_costs(group, instance, utilisation, prices=prices)]


def cheapest_meeting_slo(rows, slo_ms: float, percentile: str = "p99", utilisation: float = 1.0,
                         prices=None) -> list[dict]:
    """One line per instance, cheapest first: its cheapest (variant, batch) whose ``percentile`` latency meets
    ``slo_ms``, with $ per 1M requests at that point; an instance with no such point says why (and sorts last).

    Example:
        >>> for line in cheapest_meeting_slo(table.rows, slo_ms=50, percentile="p99"):   # doctest: +SKIP
        ...     print(line["instance"], line["usd_per_1m_requests"], line["reason"])
    """
    from workbench.measure.slo import tail_latency_ms

    lines = []
    by_instance = defaultdict(list)
    for row in priced_rows(rows, utilisation, prices):
        by_instance[row["instance"]].append(row)
    for instance, group in by_instance.items():
        judged = [(r, tail_latency_ms(r, percentile)) for r in group]
        meeting = [(r, lat) for r, lat in judged if lat is not None and lat <= slo_ms]
        if not meeting:
            unknown = sum(lat is None for _, lat in judged)
            reason = (f"no point meets {percentile} <= {slo_ms} ms" + (f" ({unknown} with too few calls for "
                                                                       f"{percentile})" if unknown else ""))
            lines.append({"instance": instance, "meets_slo": False, "reason": reason, "usd_per_1m_requests": None})
            continue
        best, lat = min(meeting, key=lambda rl: rl[0]["usd_per_1m_requests"])
        lines.append({"instance": instance, "meets_slo": True, "variant": best.get("variant_name") or best.get("variant"),
                      "variant_id": best.get("variant_id"), "batch_size": best.get("batch_size"),
                      "latency_ms": round(lat, 3), "percentile": percentile,
                      "throughput_per_s": best.get("throughput_per_s"), "usd_per_hour": best.get("usd_per_hour"),
                      "usd_per_1m_requests": best["usd_per_1m_requests"],
                      "reason": f"{percentile} {lat:.2f} ms <= {slo_ms} ms at batch {best.get('batch_size')}"})
    return sorted(lines, key=lambda x: (not x["meets_slo"], x["usd_per_1m_requests"] or 0.0))


def format_cheapest(lines: list[dict]) -> str:
    """Plain-text table of :func:`cheapest_meeting_slo` for the terminal."""
    out = [f"{'instance':14s} {'variant':18s} {'batch':>5s} {'latency ms':>10s} {'$/1M requests':>14s}  note"]
    for x in lines:
        cost = f"{x['usd_per_1m_requests']:.4g}" if x["usd_per_1m_requests"] is not None else "-"
        out.append(f"{x['instance']:14s} {str(x.get('variant') or '-'):18s} {str(x.get('batch_size') or '-'):>5s} "
                   f"{str(x.get('latency_ms') or '-'):>10s} {cost:>14s}  {x['reason']}")
    return "\n".join(out)


__all__ = ["priced_rows", "cheapest_meeting_slo", "format_cheapest"]
