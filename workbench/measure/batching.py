"""Batching sweep: latency, throughput and memory of one variant over a grid of batch sizes x sequence lengths.

Encoders/classifiers: one forward call per point (``scenario="batching"``). Causal LMs: prompt length x output
length, timing the prefill forward and the whole greedy generation separately so prompt and output tokens get
their own throughput and cost (``scenario="generation-batching"``).

A point that fails (out of memory, an error, or slower than the per-point time budget) becomes a row with
``failed=True`` and the reason, and the sweep goes on. Per sequence length the batch stops growing once a point's
p99 passes ``latency_cap_ms`` or runs out of memory (bigger batches would only be slower / fail the same way).
Rows are appended to the results table as soon as each point is measured.

Each point is timed for at least the calls its planning percentile needs (``SweepConfig.percentile``:
``timing.MIN_SAMPLES``, 200 for p99) within ``point_seconds``; a percentile without enough calls is None in the row,
with a note. Every point runs at the variant's own thread count (``runtime.with_threads`` when ``threads`` is given),
and the row's ``threads`` is that count.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from workbench.measure.memory import measure_peak_memory
from workbench.runtime.families import pad_id
from workbench.measure.timing import (MIN_SAMPLES, PERCENTILES, highest_percentile, measure_latency, per_second,
                                      row_percentile, timed_call, timing_columns)


@dataclass(frozen=True)
class SweepConfig:
    """The grid and its limits.

    Args:
        batch_sizes: batch sizes to try, grown in ascending order per sequence length.
        seq_lens: input lengths (classifiers) or prompt lengths (LMs); None = the task's default length.
        output_lens: tokens generated per prompt (causal LMs only).
        latency_cap_ms: stop growing the batch once a point's p99 exceeds this (None: no cap).
        point_seconds: timing budget of one point (windows stop early once stable and ``percentile`` has its calls).
        timeout_s: a single call slower than this fails the point (and stops the batch growing).
        threads: intra-op threads of every point: the variant's runner is rebuilt at this count if it was created
            with another (None: the count it was created with).
        percentile: the highest latency percentile the sweep is read at (the SLO's): each point times at least
            ``MIN_SAMPLES[percentile]`` calls while ``point_seconds`` allow.
        forward_only: time one forward call per point even for text-generating tasks (a served scoring / prefill
            graph without a KV cache), instead of prompt + generated output.
        retries: times a point whose window medians did not agree (``stable`` False: plans skip it) is timed again
            before its row is kept (the row says ``retried``); bounds a point at ``(1 + retries) x point_seconds``. A
            point whose budget held fewer than 3 windows is not retried (it would run out of time the same way).

    Example:
        >>> SweepConfig.quick()                 # 1, 2, 4, 8 at the task's length
    """

    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    seq_lens: tuple[int | None, ...] = (None,)
    output_lens: tuple[int, ...] = (16,)
    latency_cap_ms: float | None = None
    point_seconds: float = 10.0
    timeout_s: float = 60.0
    threads: int | None = None
    percentile: str = "p99"
    forward_only: bool = False
    retries: int = 1

    def __post_init__(self):
        for name in ("batch_sizes", "output_lens"):
            values = tuple(int(v) for v in getattr(self, name))
            if not values or min(values) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: give one or more positive integers")
            object.__setattr__(self, name, tuple(sorted(set(values))))
        seqs = tuple(None if s is None else int(s) for s in self.seq_lens)
        if not seqs or any(s is not None and s < 1 for s in seqs):
            raise ValueError(f"seq_lens={self.seq_lens}: give positive lengths (or None for the task's default)")
        object.__setattr__(self, "seq_lens", seqs)
        if self.latency_cap_ms is not None and self.latency_cap_ms <= 0:
            raise ValueError(f"latency_cap_ms={self.latency_cap_ms}: use a positive number of ms or None")
        if self.point_seconds <= 0 or self.timeout_s <= 0:
            raise ValueError(f"point_seconds={self.point_seconds} and timeout_s={self.timeout_s} must be positive")
        if self.retries < 0:
            raise ValueError(f"retries={self.retries}: use 0 (never time a point again) or more")
        if self.percentile not in PERCENTILES:
            raise ValueError(f"percentile {self.percentile!r} unknown: use one of {PERCENTILES}")
        if self.threads is not None and (int(self.threads) != self.threads or self.threads < 1):
            raise ValueError(f"threads={self.threads}: use a positive number of intra-op threads or None")

    @property
    def min_calls(self) -> int:
        """Timed calls per point wanted for ``percentile`` (``timing.MIN_SAMPLES``)."""
        return MIN_SAMPLES[self.percentile]

    @classmethod
    def quick(cls) -> "SweepConfig":
        """Small grid for notebooks and CI: batch 1..8, a few seconds per point."""
        return cls(batch_sizes=(1, 2, 4, 8), point_seconds=3.0, output_lens=(8,))

    @classmethod
    def serving(cls, percentile: str = "p99") -> "SweepConfig":
        """Batch 1..64 capped at 500 ms p99: the range a dynamic batcher would use.

        Each point is timed for ``MIN_SAMPLES[percentile]`` calls (200 for p99) within 20 s: every call under 100 ms
        gets its p99; slower points report p99 as None and the plan falls back to the highest percentile they
        support. Bounded: 7 points x 20 s plus one window each.
        """
        return cls(batch_sizes=(1, 2, 4, 8, 16, 32, 64), latency_cap_ms=500.0, point_seconds=20.0,
                   percentile=percentile)


class PointTimeout(RuntimeError):
    """One call took longer than the point's time budget."""


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (MemoryError, torch.OutOfMemoryError)) or "out of memory" in str(exc).lower()


def _timed_stats(fn: Callable[[], object], device: str, config: SweepConfig, threads: int | None):
    first = timed_call(fn, device)[0] / 1e3  # first call: also tells whether the point fits its budget at all
    if first > config.timeout_s:
        # A compiled variant compiles for a new shape on its first call (PT2E int8 took 17 s at batch 16 after its
        # screen at 32): that is a build, not the point. The second call says whether the point itself is too slow.
        again = timed_call(fn, device)[0] / 1e3
        if again > config.timeout_s:
            raise PointTimeout(f"one call took {again:.1f}s (the first {first:.1f}s) > timeout_s {config.timeout_s}s")
    # Windows of 5 calls at least (measure_latency grows them to ~1/20 of the calls that fit, for steadier medians);
    # min_calls decides how many calls run before the point may stop, point_seconds bounds it.
    return measure_latency(fn, device=device, warmup=3, window_calls=5, max_windows=6,
                           max_seconds=config.point_seconds, threads=threads, min_calls=config.min_calls)


def _forward_point(task, variant, batch: int, seq_len: int | None, config: SweepConfig, threads) -> dict:
    inputs = task.example_inputs(batch, seq_len)
    seq = int(next(iter(inputs.values())).shape[1])
    stats = _timed_stats(lambda: variant(inputs), variant.device, config, threads)
    row = {"seq_len": seq, **timing_columns(stats, batch, task.tokens_in(inputs))}
    row.update(measure_peak_memory(lambda: variant(inputs), variant.device))
    return row


def _generate_fn(variant, prompt: torch.Tensor, output_len: int) -> Callable[[], object]:
    """Greedy generation of exactly ``output_len`` tokens with the variant's own KV-cache path."""
    model = variant.model
    if model is not None and hasattr(model, "generate"):
        ids = prompt.to(variant.device)
        kwargs = dict(max_new_tokens=output_len, min_new_tokens=output_len, do_sample=False,
                      attention_mask=torch.ones_like(ids), pad_token_id=pad_id(None, model.config))

        def run():
            with torch.inference_mode():
                return model.generate(ids, **kwargs)
        return run
    runner = getattr(variant, "runner", None)
    if hasattr(runner, "generate_greedy"):
        return lambda: runner.generate_greedy(prompt, max_new_tokens=output_len)
    raise ValueError(f"variant {variant.name!r} cannot generate (no model.generate, no runner.generate_greedy): "
                     "sweep it with the forward-only scenario or export the LM with a KV cache")


def _generation_point(task, variant, batch: int, prompt_len: int | None, output_len: int, config: SweepConfig,
                      threads) -> dict:
    inputs = task.example_inputs(batch, prompt_len)
    prompt = inputs["input_ids"]
    plen = int(prompt.shape[1])
    # prefill: one forward over the prompt (encoder-decoders: the encoder plus the first decoder step)
    ask = getattr(task, "generation_call", None)  # duck-typed tasks without it decode as decoder-only LMs
    task_call = ask(variant, inputs, output_len) if ask else None
    prefill_inputs = inputs if task_call else {"input_ids": prompt}
    prefill = _timed_stats(lambda: variant(prefill_inputs), variant.device, config, threads)
    generate = task_call or _generate_fn(variant, prompt, output_len)
    full = _timed_stats(generate, variant.device, config, threads)
    decode_ms = full.p50_ms - prefill.p50_ms
    # whole generation in the latency/throughput columns; prompt and output tokens at their own phase's pace
    row = {"seq_len": plen, "prompt_len": plen, "output_len": output_len,
           **timing_columns(full, batch, batch * (plen + output_len)),
           "prefill_p50_ms": round(prefill.p50_ms, 4), "prefill_stable": prefill.stable,
           "decode_p50_ms": round(decode_ms, 4) if decode_ms > 0 else None,
           "prompt_tokens_per_s": per_second(batch * plen, prefill.p50_ms, 1),
           "output_tokens_per_s": per_second(batch * output_len, decode_ms, 1) if decode_ms > 0 else None}
    if decode_ms <= 0:  # was clamped to 1e-6 ms: billions of output tokens/s
        row["decode_note"] = (f"generation p50 {full.p50_ms:.2f} ms <= prefill p50 {prefill.p50_ms:.2f} ms: the decode "
                              "time is lost in timing noise; re-sweep on a quiet machine")
    row.update(measure_peak_memory(generate, variant.device))
    return row


def sweep_batching(task, variant, config: SweepConfig | None = None, table=None, progress: bool = True,
                   redo: bool = False) -> list[dict]:
    """Measure ``variant`` at every grid point; returns the rows (also appended to ``table`` as measured).

    Args:
        task: the Task (gives realistic inputs of each shape).
        variant: the Variant to time (never changed).
        config: the grid and its limits (default :class:`SweepConfig`).
        table: a :class:`~workbench.results.ResultsTable`; each row is appended (and saved) when measured.
        progress: show a tqdm bar.
        redo: measure points ``table`` already holds (``ResultsTable.saved_point``) again; by default their saved
            rows are returned instead, so a re-run or an interrupted sweep resumes without duplicates.

    Example:
        >>> rows = sweep_batching(task, task.baseline(), SweepConfig.quick(), table)   # doctest: +SKIP
        >>> [(r["batch_size"], r["latency_p99_ms"]) for r in rows if not r["failed"]]
    """
    from tqdm.auto import tqdm

    from workbench.runtime import runner_threads, with_threads

    config = config or SweepConfig()
    variant = with_threads(variant, config.threads)  # each runner runs at the count it was created with
    threads = runner_threads(variant) or config.threads
    outs = config.output_lens if task.generates_text and not config.forward_only else (None,)
    lines = [(s, o) for s in config.seq_lens for o in outs]
    bar = tqdm(total=len(lines) * len(config.batch_sizes), desc=f"sweep {variant.name}", disable=not progress)
    rows: list[dict] = []
    for seq_len, out_len in lines:
        stop_reason = None
        for batch in config.batch_sizes:
            bar.update(1)
            if stop_reason:
                continue
            saved = None if redo or not hasattr(table, "saved_point") else table.saved_point(
                variant.id, "generation-batching" if out_len is not None else "batching", batch, seq_len, out_len,
                threads=threads, task=task)
            if saved is not None:   # already measured here: resume (a saved cap / OOM / timeout still stops the line)
                rows.append(saved)
                stop_reason = "saved" if saved.get("capped") or saved.get("failure") in ("oom", "timeout") else None
                continue
            row, stop_reason = _one_point(task, variant, batch, seq_len, out_len, config, threads)
            for attempt in range(1, config.retries + 1):   # a burst of load unsettled it: time it again (bounded)
                if row.get("failed") or row.get("stable") is not False or row.get("n_windows", 0) < 3:
                    break   # (too few windows in the budget: another try would run out of time the same way)
                row, stop_reason = _one_point(task, variant, batch, seq_len, out_len, config, threads)
                row["retried"] = attempt
            rows.append(table.append(row) if table is not None else row)
    bar.close()
    return rows


def _one_point(task, variant, batch, seq_len, out_len, config, threads=None) -> tuple[dict, str | None]:
    base = {"task": task.name, **variant.describe(), "batch_size": batch,
            "scenario": "generation-batching" if out_len is not None else "batching",
            "seq_len": seq_len, "output_len": out_len, "latency_cap_ms": config.latency_cap_ms}
    try:
        measured = (_generation_point(task, variant, batch, seq_len, out_len, config, threads) if out_len is not None
                    else _forward_point(task, variant, batch, seq_len, config, threads))
    except Exception as exc:  # one bad point must not end the sweep
        failure = "oom" if _is_oom(exc) else "timeout" if isinstance(exc, PointTimeout) else "error"
        if failure == "oom" and variant.device == "cuda":
            torch.cuda.empty_cache()
        row = {**base, "failed": True, "failure": failure, "error": f"{type(exc).__name__}: {exc}"[:500]}
        # OOM / timeout at this batch: larger batches would only fail the same way.
        return row, (f"stopped after {failure} at batch {batch}" if failure in ("oom", "timeout") else None)
    row = {**base, **measured, "failed": False}
    # The cap is on p99; without the calls for p99, a lower percentile (or the fastest call) that already passes the
    # cap proves p99 does.
    tail = highest_percentile([row], "p99")
    tail, tail_ms = (tail, row_percentile(row, tail)) if tail else ("fastest call", row.get("latency_min_ms"))
    if config.latency_cap_ms is not None and tail_ms is not None and tail_ms > config.latency_cap_ms:
        row["capped"] = True
        return row, f"{tail} {tail_ms:.1f} ms > cap {config.latency_cap_ms} ms at batch {batch}"
    return row, None


def sweep_rows(rows, variant_id: str | None = None, seq_len: int | None = None) -> list[dict]:
    """The successful sweep rows (optionally of one variant / one sequence length), sorted by batch size.

    A table that grew over several runs can hold the same point twice: the latest measurement wins.
    """
    latest = {}
    for r in rows:
        if r.get("scenario") in ("batching", "generation-batching") and not r.get("failed") \
                and (variant_id is None or r.get("variant_id") == variant_id) \
                and (seq_len is None or r.get("seq_len") == seq_len):
            latest[(r.get("variant_id"), r.get("seq_len"), r.get("output_len"), r["batch_size"])] = r
    return sorted(latest.values(), key=lambda r: (r.get("seq_len") or 0, r.get("output_len") or 0, r["batch_size"]))


__all__ = ["SweepConfig", "sweep_batching", "sweep_rows", "PointTimeout"]
