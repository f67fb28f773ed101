"""Measurement: never mutates a model. ``measure_variant`` is the single-request/batch latency scenario.

Importing this package stays light (no torch): the CLI reads ``timing.PERCENTILES`` while it builds its parser.
"""
from __future__ import annotations

from workbench.measure.environment import environment_fingerprint
from workbench.measure.timing import LatencyStats, measure_latency


def measure_variant(task, variant, batch_size: int = 1, seq_len: int | None = None, quality: bool = True,
                    eval_limit: int | None = None, threads: int | None = None, max_seconds: float = 20.0) -> dict:
    """One results row for ``variant`` on ``task``: quality (+95% CI), latency percentiles, throughput, memory, size.

    Args:
        batch_size / seq_len: shape of the timing inputs (real task data, padded/truncated).
        quality: evaluate the task metric on the test split (``eval_limit`` examples at most).
        threads: intra-op threads to run at: the variant's runner is rebuilt at this count when it was created with
            another (``runtime.with_threads``; same variant id). None: the count its runner was created with. The
            row's ``threads`` is the count the timed calls ran at.
        max_seconds: timing budget; within it, enough calls are timed for p99 (``timing.MIN_SAMPLES``).

    Example:
        >>> row = measure_variant(task, task.baseline(), batch_size=8)   # doctest: +SKIP
    """
    from workbench.measure.memory import measure_peak_memory
    from workbench.measure.size import variant_size
    from workbench.measure.timing import timing_columns
    from workbench.runtime import runner_threads, with_threads

    variant = with_threads(variant, threads)  # the runner runs at its own count: ask it, never pin one after the fact
    inputs = task.example_inputs(batch_size, seq_len)
    seq = int(next(iter(inputs.values())).shape[1])
    stats = measure_latency(lambda: variant(inputs), device=variant.device, threads=runner_threads(variant) or threads,
                            max_seconds=max_seconds)
    # tokens_per_s (prefill tokens) only where the task counts tokens
    row = {"task": task.name, **variant.describe(), "scenario": "latency", "batch_size": batch_size, "seq_len": seq,
           **timing_columns(stats, batch_size, task.tokens_in(inputs))}
    row.update(measure_peak_memory(lambda: variant(inputs), variant.device))
    row.update(variant_size(variant))
    if quality:
        row.update(task.evaluate(variant, limit=eval_limit).as_row())
    return row


__all__ = ["measure_variant", "measure_latency", "LatencyStats", "environment_fingerprint"]
