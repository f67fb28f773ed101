"""The Triton batching plan of a bundle, read from a measured sweep: ``max_batch_size``, the preferred batch sizes
and the queue delay, at the SLO's percentile (or the highest one the points have the calls for), on stable points."""
from __future__ import annotations

from workbench.measure.batching import sweep_rows
from workbench.measure.slo import knee, plannable_points, slo_point, stable_points

MAX_QUEUE_DELAY_US = 100_000  # never hold a request more than 100 ms for batching
# Worst case of one request under the plan: it arrives just after a batch of max_batch_size started, waits for it
# (one batch latency), waits the queue delay for its own batch to fill, then runs in it (a second batch latency). So
# the delay the SLO leaves is SLO - QUEUE_WAIT_BATCHES x (latency at max_batch_size), floored at 0. A bound from
# offline timings of one instance, not a guarantee under load: a load test is what shows the served tail.
QUEUE_WAIT_BATCHES = 2


class ExportError(ValueError):
    """The bundle cannot be made from these inputs (the message says what to change); nothing was written."""


def batching_plan(rows, variant_id: str, slo_ms: float | None, percentile: str = "p99",
                  allow_unstable: bool = False) -> dict:
    """max_batch_size, preferred batch sizes and queue delay from the measured sweep of ``variant_id``.

    Only stable points are planned on (``skipped`` lists the others), at the highest percentile up to
    ``percentile`` that they have the calls for (``percentile_used``). With an SLO the queue delay is
    ``slo_ms - QUEUE_WAIT_BATCHES x latency(max_batch_size)`` floored at 0 (see ``QUEUE_WAIT_BATCHES``); without
    one, one batch-1 service time. ``threads`` is the intra-op count the planned rows ran at. When no point is
    stable, ``allow_unstable`` plans on all of them and marks the plan ``provisional`` (else an ExportError).
    """
    points = sweep_rows(rows, variant_id)
    if not points:
        raise ExportError(f"no batching sweep of variant {variant_id} in the results: run `workbench sweep` "
                          "(or sweep_batching) for this variant first; the Triton batching plan is derived from it")
    seq_len = max(r.get("seq_len") or 0 for r in points)  # the longest swept input: the conservative line
    out_len = max((r.get("output_len") or 0 for r in points if r.get("seq_len") == seq_len), default=0)
    line = [r for r in points if r.get("seq_len") == seq_len and (r.get("output_len") or 0) == out_len]
    stable, skipped = stable_points(line)
    if not stable and not allow_unstable:
        raise ExportError(f"every point of the sweep of {variant_id} at seq_len {seq_len or None} is unstable: "
                          + "; ".join(skipped) + " (nothing was written; re-sweep on a quieter machine, or pass "
                          "allow_unstable=True / --allow-unstable for a plan marked provisional)")
    provisional = not stable
    stable, skipped = plannable_points(line, allow_unstable)
    counts = sorted({int(r["threads"]) for r in line if r.get("threads")})
    if len(counts) > 1:
        raise ExportError(f"the sweep of {variant_id} mixes intra-op thread counts {counts}: sweep it again at one "
                          "count (--threads) so the plan and Triton's intra_op_thread_count describe one setting")
    plan = {"variant_id": variant_id, "seq_len": seq_len or None, "percentile": percentile, "slo_ms": slo_ms,
            "threads": counts[0] if counts else None, "rows": line, "skipped": skipped, "provisional": provisional}
    if slo_ms is not None:
        slo = slo_point(line, slo_ms, percentile, allow_unstable=allow_unstable)
        if not slo.feasible:
            raise ExportError(f"{slo.reason} (nothing was written)")
        top = slo.batch_size
        batch_ms = slo.latency_ms
        delay_ms = slo_ms - QUEUE_WAIT_BATCHES * batch_ms
        plan.update(slo=slo.as_dict(), percentile_used=slo.percentile_used,
                    notes=[n for n in slo.notes if n not in skipped])
        if delay_ms < 0:
            plan["notes"].append(
                f"a request that arrives just after a batch of {top} started can take {QUEUE_WAIT_BATCHES} x "
                f"{batch_ms:.2f} = {QUEUE_WAIT_BATCHES * batch_ms:.2f} ms > SLO {slo_ms} ms even with no queue "
                "delay: the SLO holds while requests do not queue behind a full batch")
    else:
        uncapped = [r for r in stable if not r.get("capped")]
        top = max(r["batch_size"] for r in uncapped) if uncapped else stable[0]["batch_size"]
        delay_ms = stable[0]["latency_p50_ms"]
        plan.update(percentile_used=None, notes=[])
    k = knee([r for r in stable if r["batch_size"] <= top])
    plan.update(max_batch_size=int(top), preferred_batch_sizes=sorted({int(k["batch_size"]), int(top)}),
                max_queue_delay_us=int(min(max(delay_ms, 0.0) * 1000, MAX_QUEUE_DELAY_US)))
    return plan


__all__ = ["batching_plan", "ExportError", "MAX_QUEUE_DELAY_US", "QUEUE_WAIT_BATCHES"]
