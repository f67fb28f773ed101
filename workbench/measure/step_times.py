"""In-process step times of a causal LM: the prefill of one prompt (TTFT at batch 1) and the decode step at each batch
size, the two figures a continuous-batching engine's latency is built from (:mod:`workbench.serving.engine.predict`
simulates the engine on them).

Each figure comes from whole greedy requests through :func:`workbench.decoding.fast_loop.hf_generate` (HF
``generate``, dynamic KV cache, no EOS stop: exactly ``new_tokens`` tokens), read by
:func:`workbench.measure.request_metrics.request_metrics` from the emission times of the very call: TTFT (prefill +
first token) and TPOT = (e2e - TTFT) / (tokens - 1), the mean decode step of that batch while its context grows from
``prompt_tokens`` to ``prompt_tokens + new_tokens`` (the contexts a served request of that shape decodes over). A
batch of B prompts is one call, one sample (B sequences share its clock), and its TPOT is already a mean over
``new_tokens - 1`` steps. Per batch size: one short untimed warm-up call (8 prompt tokens, 2 new: allocation at that
batch size without paying a whole request), then calls until ``seconds_per_batch`` has passed (at least ``min_calls``,
at most ``max_calls``), so a wide batch whose request takes longer than the budget is one call; the figure is the
median over calls, with the call count beside it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepTimes:
    """Measured (or given) step times, seconds: ``prefill_s`` for one prompt of ``prompt_tokens`` (TTFT at batch 1)
    and ``tpot_s[B]`` per decode step with B sequences running."""

    prefill_s: float
    tpot_s: dict
    prompt_tokens: int | None = None
    calls: dict = field(default_factory=dict)
    threads: int | None = None
    notes: str = ""

    def __post_init__(self):
        if not self.tpot_s:
            raise ValueError("no decode step times: measure at least one batch size (tpot_s = {batch: seconds})")
        bad = {b: t for b, t in self.tpot_s.items() if not (isinstance(b, int) and b >= 1) or not t or t <= 0}
        if bad:
            raise ValueError(f"decode step times {bad}: each key must be a batch size >= 1 and each time > 0 s")
        if not self.prefill_s or self.prefill_s <= 0:
            raise ValueError(f"prefill time {self.prefill_s} s must be > 0 (TTFT at batch 1 of the workload's prompt)")

    def tpot_at(self, batch: int) -> float:
        """Decode step time with ``batch`` sequences: linear between the measured sizes; below the smallest, the
        smallest's; above the largest, the line through the two largest (never below the largest's time)."""
        if batch < 1:
            raise ValueError(f"batch {batch} must be >= 1")
        sizes = sorted(self.tpot_s)
        if batch in self.tpot_s:
            return self.tpot_s[batch]
        if batch < sizes[0] or len(sizes) == 1:
            return self.tpot_s[sizes[0] if batch < sizes[0] else sizes[-1]]
        lo = max([s for s in sizes if s < batch], default=sizes[-2])
        hi = min([s for s in sizes if s > batch], default=sizes[-1])
        if lo == hi:   # above the largest: extrapolate from the two largest
            lo, hi = sizes[-2], sizes[-1]
        slope = (self.tpot_s[hi] - self.tpot_s[lo]) / (hi - lo)
        value = self.tpot_s[lo] + slope * (batch - lo)
        return max(value, self.tpot_s[sizes[-1]]) if batch > sizes[-1] else value

    def as_dict(self) -> dict:
        return {"prefill_ms": round(self.prefill_s * 1e3, 3), "prompt_tokens": self.prompt_tokens,
                "tpot_ms": {str(b): round(t * 1e3, 3) for b, t in sorted(self.tpot_s.items())},
                "calls": {str(b): n for b, n in sorted(self.calls.items())}, "threads": self.threads,
                "notes": self.notes}


def batch_sizes(max_batch: int) -> list[int]:
    """Powers of two up to ``max_batch``, and ``max_batch`` itself."""
    if max_batch < 1:
        raise ValueError(f"max batch {max_batch} must be >= 1")
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    return sizes + [max_batch]


def measure_step_times(model, prompt_tokens: int, new_tokens: int, batches, seconds_per_batch: float = 3.0,
                       threads: int | None = None, min_calls: int = 1, max_calls: int = 20, seed: int = 0,
                       progress: bool = False) -> StepTimes:
    """Prefill and decode step times of ``model`` (a HF causal LM) at each of ``batches`` (see the module doc).

    ``threads``: torch's intra-op count for the measurement (the engine's cores); None keeps the current one."""
    import statistics

    import torch
    from tqdm.auto import tqdm

    from workbench.decoding.fast_loop import hf_generate
    from workbench.decoding.lm import vocab_size
    from workbench.measure.request_metrics import request_metrics
    from workbench.measure.timing import pin_threads

    batches = sorted({int(b) for b in batches})
    if not batches or batches[0] != 1:
        raise ValueError(f"batches {batches}: give batch sizes >= 1 including 1 (the prefill time is TTFT at batch 1)")
    if prompt_tokens < 1 or new_tokens < 2:
        raise ValueError(f"prompt tokens ({prompt_tokens}) >= 1 and new tokens ({new_tokens}) >= 2 (TPOT needs two) "
                         "are needed")
    if seconds_per_batch <= 0 or min_calls < 1 or max_calls < min_calls:
        raise ValueError(f"seconds_per_batch ({seconds_per_batch}) > 0 and 1 <= min_calls ({min_calls}) <= max_calls "
                         f"({max_calls}) are needed")
    used = pin_threads(threads)
    gen = torch.Generator().manual_seed(seed)
    # the config's vocabulary: a weight-only LM head has no ``weight`` to read the width from
    high = min(getattr(getattr(model, "config", None), "vocab_size", None) or vocab_size(model), 4096)
    ttft, tpot, calls = {}, {}, {}
    for b in tqdm(batches, desc="step times", disable=not progress):
        ids = torch.randint(0, high, (b, prompt_tokens), generator=gen)
        hf_generate(model, ids[:, :8], 2)   # warm-up at this batch size (allocation, first-call costs), kept short
        firsts, steps, t0 = [], [], time.perf_counter()
        while len(steps) < max_calls and (len(steps) < min_calls or time.perf_counter() - t0 < seconds_per_batch):
            res = hf_generate(model, ids, new_tokens)
            if len(res.emit_times) != new_tokens:
                raise RuntimeError(f"generate emitted {len(res.emit_times)} times for {new_tokens} tokens "
                                   f"({res.notes}): no per-step clock to read a decode step from")
            m = request_metrics(res.requests())
            firsts.append(m["ttft_ms_mean"] / 1e3)
            steps.append(m["tpot_ms_mean"] / 1e3)
        ttft[b], tpot[b], calls[b] = statistics.median(firsts), statistics.median(steps), len(steps)
    return StepTimes(ttft[1], tpot, prompt_tokens, calls, used,
                     notes=f"HF generate (dynamic KV cache), {new_tokens} new tokens per call, median over calls")


__all__ = ["StepTimes", "measure_step_times", "batch_sizes"]
