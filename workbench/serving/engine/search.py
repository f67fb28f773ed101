"""Engine config search under the SLO: which vLLM arguments (and which of the bundles' checkpoints) serve the most
goodput on this machine, the winner re-measured on a fresh server before anything is written.

Goodput is the request rate at which at least ``attainment`` (99%) of requests have TTFT <= ``slo_ttft_ms`` and ITL <=
``slo_itl_ms`` and none failed (:func:`workbench.serving.engine.load.measure_point`; its ``slo_outcome`` and the climb's
end are :mod:`workbench.serving.load.sweep`'s). Each candidate needs its own engine process (vLLM takes its arguments
at start-up, ~90 s here), so candidates are few and measured one after another:

1. **default**: the first bundle's own engine arguments (``engine_args.json``: vLLM's defaults unless a search wrote
   it) in vLLM's own dtype for a bf16 checkpoint (bf16, even where the CPU emulates it); its idle latency sets the
   start rate (and the SLO when none is given: TTFT p99 <= 5x the idle TTFT p50, ITL p99 <= 4x the idle ITL p50).
2. **precision**: the other bundles' checkpoints (bf16 / int8 / int4 of the same model) with the same arguments.
3. **dtype / batching**: on the best checkpoint, the machine's compute dtype where it is not vLLM's (fp32 on a CPU
   without AMX or AVX512-BF16), then wider continuous batching (``max_num_seqs``) with a larger chunked-prefill
   budget per step (``max_num_batched_tokens``).
4. **kv / prefix**: on the best so far, an fp8 KV cache (where the engine keeps one: AVX-512 / AMX / GPU), and
   prefix caching flipped (off when the workload shares no prefix: its hashing is then pure cost; the full space
   only).
5. **confirm**: the winner (most goodput of single climbs, which favours a lucky climb) climbed again on a fresh
   server, through AIPerf and the own client on one schedule when AIPerf is installed. That climb is what is quoted
   and written into the bundle (:func:`write_search`). The default is climbed again the same way (fresh server, same
   client) and the headline ratio is the two confirmations' goodputs: like with like, since one configuration's two
   climbs differed 2x on 2 cores at 15-30 requests a point. A confirmation point reads at least
   :func:`confirm_requests` requests (100 at 99% attainment): at 17 requests one late request fails the point (16 of 17
   is 94%), so one request decided a rung of the headline; at 100, one late request is still within 99%.

Each climb starts at the idle engine's one-request rate (1 / idle e2e: continuous batching serves several at once), doubles while the SLO holds (halving at most twice
when the start misses), and once a pass and a miss bracket it tries 1.41x the highest pass once; the goodput is
:func:`workbench.serving.load.sweep.goodput_of` over the points. A time budget bounds stages 2-4 (what it left out
is listed); a candidate the engine refuses to start is a row with its log tail, and the others go on.
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from workbench.serving.engine.engine_args import VLLM_AUTO_DTYPE, EngineArgs, engine_dtype_here
from workbench.serving.engine.support import fp8_kv_here
from workbench.serving.engine.workloads import Workload, get_workload

MIN_REQUESTS, MAX_REQUESTS = 8, 80
CONFIRM_POINT_MAX_S = 180.0        # the longest a confirmation point's arrivals last (point_requests)
# A confirmation starts at half the search climb's goodput and may halve this many times: a search point of 8-80
# requests builds no queue, and on an AVX2 CPU vLLM fp32 passed 3.8/s there but missed 0.47/s on 85 requests.
CONFIRM_HALVINGS = 4
# No climb halves below the rate at which MIN_REQUESTS arrive in CONFIRM_POINT_MAX_S (0.044/s): vLLM's emulated bf16
# here missed at 0.046/s, and one more halving would have spent 12 minutes on 8 requests. A start below it (half a
# search-climb goodput under 0.088/s) is measured as given, on MIN_REQUESTS. A candidate that misses at its slowest
# rate has a goodput below that rate, and the headline is then a lower bound (``headline_ratio_at_least``).
SLOWEST_RATE = MIN_REQUESTS / CONFIRM_POINT_MAX_S
SLO_TTFT_X, SLO_ITL_X = 5, 4       # a derived SLO: these multiples of the default engine's idle TTFT p50 / ITL p50
SUMMARY_SCENARIO = "load-engine-search"


@dataclass
class EngineCandidate:
    """One (checkpoint, engine arguments) pair and what its climb found."""

    precision: str
    bundle: Path
    args: EngineArgs
    stage: str
    goodput_per_s: float | None = None
    rows: list = field(default_factory=list)
    startup_s: float | None = None
    error: str | None = None
    seconds: float = 0.0
    start_rate: float | None = None   # the climb's first rate (a prediction climbs the same ladder)
    min_requests: int = MIN_REQUESTS  # the fewest requests a point of its climb reads (more for a confirmation)
    halvings: int = 2                 # how far below its start its climb may halve (more for a confirmation)
    idle: dict | None = None          # its engine's idle latency (the default's and the confirmation's: a
    #                                   prediction of their goodput is calibrated to it, serving.engine.predict)

    @property
    def label(self) -> str:
        return f"{self.precision}-{self.args.label()}"

    def summary(self) -> dict:
        from workbench.serving.load.sweep import climb_end, goodput_text

        end = climb_end(self.rows) if self.rows else "miss"
        return {"label": self.label, "precision": self.precision, "stage": self.stage,
                "engine_args": self.args.as_dict(), "goodput_per_s": self.goodput_per_s,
                "goodput": goodput_text(self.goodput_per_s, end), "points": len(self.rows),
                "start_rate_per_s": self.start_rate, "min_requests": self.min_requests, "idle": self.idle,
                "startup_s": self.startup_s, "seconds": round(self.seconds, 1), "error": self.error}


@dataclass
class EngineSearchResult:
    slo_ttft_ms: float
    slo_itl_ms: float
    workload: Workload
    candidates: list[EngineCandidate]
    idle: dict | None = None
    confirmed: EngineCandidate | None = None
    default_confirmed: EngineCandidate | None = None   # the default climbed again the way the winner was confirmed
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    attainment: float = 0.99      # the climb's settings, so a prediction can climb the same way
    point_s: float = 8.0
    max_points: int = 5

    @property
    def default(self) -> EngineCandidate | None:
        return next((c for c in self.candidates if c.stage == "default"), None)

    @property
    def winner(self) -> EngineCandidate | None:
        """Most goodput of the search's climbs; ties go to the earlier (simpler) candidate."""
        scored = [c for c in self.candidates if c.goodput_per_s]
        return max(scored, key=lambda c: c.goodput_per_s) if scored else None

    @property
    def headline_ratio(self) -> float | None:
        """Confirmed winner's goodput / the default's confirmed the same way (fresh server, the same client): a
        search climb (own client) against a confirmation (AIPerf) would compare two clients and two samples, and
        the same configuration climbed twice read 3.43/s and 1.71/s here. None when either is missing."""
        win, base = self.confirmed, self.default_confirmed
        if not win or not base or not win.goodput_per_s or not base.goodput_per_s:
            return None
        return round(win.goodput_per_s / base.goodput_per_s, 3)

    @property
    def headline_ratio_at_least(self) -> float | None:
        """Where the default's confirmation met the SLO at no rate it tried (it halves no further once below
        SLOWEST_RATE): its goodput is below its slowest rate, so the confirmed winner's goodput over that rate is a
        lower bound of the ratio."""
        win, base = self.confirmed, self.default_confirmed
        if self.headline_ratio is not None or not win or not win.goodput_per_s or not base or not base.rows:
            return None   # (with a confirmed winner, no headline means the default's confirmation found no goodput)
        if any(r.get("slo_outcome") == "pass" for r in base.rows):
            return None
        return round(win.goodput_per_s / min(r["offered_rate_per_s"] for r in base.rows), 3)

    def to_text(self) -> str:
        fmt = (lambda v: f"{v:10.3f}" if v is not None else f"{'-':>10}")
        lines = [f"{'candidate':48s} {'stage':10s} {'goodput/s':>10s} {'points':>6s} {'start s':>7s}"]
        confirmations = [self.confirmed] if self.confirmed else []
        if self.default_confirmed is not None and self.default_confirmed is not self.confirmed:
            confirmations.append(self.default_confirmed)
        for c in self.candidates + confirmations:
            mark = " *" if c is self.winner else ""
            lines.append(f"{c.label:48s} {c.stage:10s} {fmt(c.goodput_per_s)} {len(c.rows):6d} "
                         f"{c.startup_s or 0:7.1f}{mark}" + (f"  failed: {c.error.splitlines()[0][:80]}"
                                                             if c.error else ""))
        lines.append(f"workload {self.workload.name} ({self.workload.prompt_tokens} in / {self.workload.new_tokens} "
                     f"out); SLO TTFT p99 <= {self.slo_ttft_ms} ms and ITL p99 <= {self.slo_itl_ms} ms; * = winner")
        if self.confirmed is not None:
            lines.append(f"confirmed {self.confirmed.label}: {self.confirmed.goodput_per_s}/s (search climb "
                         f"{self.winner.goodput_per_s if self.winner else None}/s); default confirmed "
                         f"{self.default_confirmed.goodput_per_s if self.default_confirmed else None}/s (search "
                         f"climb {self.default.goodput_per_s if self.default else None}/s); ratio {self.headline_ratio}"
                         + (f" (at least {self.headline_ratio_at_least}: the default met the SLO at no rate tried)"
                            if self.headline_ratio_at_least else ""))
        lines += [f"not tried (time budget): {s}" for s in self.skipped] + self.notes
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """What the bundle's manifest and card quote: the confirmed winner, its curve, the default, every candidate."""
        win = self.confirmed or self.winner
        return {"slo_ttft_ms": self.slo_ttft_ms, "slo_itl_ms": self.slo_itl_ms, "workload": self.workload.name,
                "winner": win.summary() if win else None, "confirmed": self.confirmed is not None,
                "goodput_per_s": win.goodput_per_s if win else None,
                "search_goodput_per_s": self.winner.goodput_per_s if self.winner else None,
                "default": self.default.summary() if self.default else None,
                "default_confirmed": self.default_confirmed.summary() if self.default_confirmed else None,
                "goodput_over_default": self.headline_ratio,
                "goodput_over_default_at_least": self.headline_ratio_at_least, "idle": self.idle,
                "candidates": [c.summary() for c in self.candidates], "skipped": self.skipped,
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def engine_space(base: EngineArgs, workload: Workload, small: bool = False, dtype_here: str | None = None,
                 fp8_kv: tuple[bool, str] | None = None, notes: list | None = None) -> list[tuple[str, Callable]]:
    """Stages 3-4 as (stage, ``best args -> candidate args``); each applies to the best arguments found so far.

    ``dtype_here`` (default :func:`~workbench.serving.engine.engine_args.engine_dtype_here`): a compute dtype other
    than ``base``'s is tried first (on a CPU without native bf16 it moves goodput most). ``fp8_kv`` (default
    :func:`~workbench.serving.engine.support.fp8_kv_here`): without it the kv stage is left out and ``notes`` says
    why."""
    dtype_here = dtype_here or engine_dtype_here()
    fp8_ok, fp8_why = fp8_kv or fp8_kv_here()
    out: list[tuple[str, Callable]] = []
    if dtype_here != base.dtype:
        out.append(("dtype", lambda b: dataclasses.replace(b, dtype=dtype_here)))
    widths = [(16, 1024)] if small else [(16, 1024), (32, 2048)]
    out += [("batching", (lambda b, s=s, t=t: dataclasses.replace(b, max_num_seqs=s, max_num_batched_tokens=t)))
            for s, t in widths if s > base.max_num_seqs]
    if fp8_ok:
        out.append(("kv", lambda b: dataclasses.replace(b, kv_cache_dtype="fp8")))
    elif notes is not None:
        notes.append(f"kv (fp8) not tried: {fp8_why}")
    if not small or workload.shared_prefix_tokens:
        out.append(("prefix", lambda b: dataclasses.replace(b, enable_prefix_caching=not b.enable_prefix_caching)))
    return out


def point_requests(rate: float, point_s: float, min_requests: int = MIN_REQUESTS) -> int:
    """Requests in a climb's point at ``rate``: ``point_s`` seconds of arrivals, within MIN_REQUESTS..MAX_REQUESTS,
    and at least ``min_requests`` (a confirmation's :func:`confirm_requests`) as far as CONFIRM_POINT_MAX_S of
    arrivals reach: 100 requests of vLLM's emulated bf16 on an AVX2 CPU (goodput 0.09/s) would take 20 minutes a
    point, so such a point reads fewer and its row says so (``confirm_requests_wanted``)."""
    wanted = min(min_requests, max(MIN_REQUESTS, round(rate * CONFIRM_POINT_MAX_S)))
    return max(wanted, MIN_REQUESTS, min(MAX_REQUESTS, round(rate * point_s)))


def confirm_requests(attainment: float) -> int:
    """The fewest requests a confirmation point reads: enough that one late request still leaves ``attainment`` met
    (100 at 99%; 8 when every request must pass, where one late request fails any count), at most 1000."""
    if attainment >= 1:
        return MIN_REQUESTS
    return max(MIN_REQUESTS, min(1000, math.ceil(round(1 / (1 - attainment), 6))))


def climb(measure: Callable[[float, int], dict], start_rate: float, max_points: int,
          max_halvings: int = 2) -> tuple[list[dict], float | None]:
    """Rates doubling from ``start_rate`` while the SLO holds (halving at most ``max_halvings`` times when nothing has
    passed yet, and never below SLOWEST_RATE); once a pass and a miss bracket the goodput, one point at 1.41x the
    highest pass (when below the lowest miss);
    ``measure(rate, k) -> row``. Returns the rows by rate and their goodput (:func:`~workbench.serving.load.sweep.
    goodput_of`)."""
    from workbench.serving.load.sweep import goodput_of

    rows, rate, good, bad, down, refined = [], start_rate, None, None, 0, False
    while len(rows) < max_points:
        row = measure(rate, len(rows))
        rows.append(row)
        if row["slo_outcome"] == "pass":
            good = max(good or rate, rate)
        else:
            bad = min(bad or rate, rate)
        if good is None:
            if down >= max_halvings or rate / 2 < SLOWEST_RATE:
                break
            rate, down = round(rate / 2, 4), down + 1
        elif bad is None:
            rate = round(rate * 2, 4)
        else:
            rate = round(good * 1.41, 4)
            if refined or rate >= bad:
                break
            refined = True
    ordered = sorted(rows, key=lambda r: r["offered_rate_per_s"])
    return ordered, goodput_of(ordered)


def idle_latency(server, ckpt: Path, workload: Workload, client_cpus, burst: int = 0) -> dict:
    """One request at a time (4, after 2 warm-ups): TTFT p50, ITL p50 and e2e p50 of the idle engine. With ``burst``
    > 1, then that many requests sent at once (fresh prompts): the p50 of their inter-token gaps, which is the
    engine's decode step with ``burst`` sequences running (``burst_itl_ms_p50``; the prediction's calibration reads
    how the step grows with the batch from it, :func:`workbench.serving.engine.predict.calibrated`)."""
    import numpy as np

    from workbench.serving.engine.load import pinned
    from workbench.serving.engine.openai_client import run_schedule

    burst = burst if burst > 1 else 0
    prompts, _ = workload.prompts(ckpt, 6 + burst, seed=7)
    with pinned(client_cpus):
        run_schedule(server.url, prompts[:2], [0.0, 3.0], workload.new_tokens)
        res = [run_schedule(server.url, [p], [0.0], workload.new_tokens) for p in prompts[2:6]]
        together = run_schedule(server.url, prompts[6:], [0.0] * burst, workload.new_tokens) if burst else None
    ttft = [r.per_request[0][0] for r in res if r.per_request]
    itl = [r.per_request[0][1] for r in res if r.per_request and r.per_request[0][1] is not None]
    if not ttft or not itl:
        raise RuntimeError(f"the idle engine answered {len(ttft)} of {len(res)} requests: see the server log "
                           f"{server.log_path}")
    out = {"ttft_ms_p50": round(float(np.median(ttft)), 2), "itl_ms_p50": round(float(np.median(itl)), 3),
           "e2e_s_p50": round(float(np.median([r.wall_s for r in res])), 3)}
    if together is not None and together.n_ok == burst and together.metrics.get("itl_ms_p50"):
        out.update(burst_size=burst, burst_itl_ms_p50=round(float(together.metrics["itl_ms_p50"]), 3))
    return out


def search_engine(bundles, slo_ttft_ms: float | None = None, slo_itl_ms: float | None = None,
                  workload: str | Workload = "chat", attainment: float = 0.99, budget_s: float = 1800.0,
                  point_s: float = 8.0, max_points: int = 5, small: bool = False, use_aiperf: bool | None = None,
                  instance: str = "c7i.large", table=None, work_dir: Path | None = None,
                  progress: Callable[[str], None] | None = None,
                  on_confirm: Callable | None = None) -> EngineSearchResult:
    """Search engine arguments (and checkpoints) of engine bundles for goodput under the SLO (see the module doc).

    Args:
        bundles: one engine bundle, or ``{precision: bundle}`` of the same model (the first is the default).
        slo_ttft_ms, slo_itl_ms: the SLO on TTFT p99 and ITL p99; None: derived from the default's idle latency.
        workload: a named workload (:data:`~workbench.serving.engine.workloads.WORKLOADS`) or a :class:`Workload`.
        budget_s: wall-clock budget for stages 2-4 (the default and the confirmation always run).
        point_s: seconds of Poisson arrivals per load point (8..80 requests; a confirmation's at least
            :func:`confirm_requests`).
        small: the small space (one batching width, no prefix flip unless the workload shares a prefix).
        use_aiperf: confirm through AIPerf as well as the own client (default: when AIPerf is installed).
        table: ResultsTable for every point row (``load-engine``) and one summary row per candidate.
        on_confirm: ``on_confirm(server, candidate, result)`` called on the confirmation's server after its climb (further
            trials on the same engine without another start-up).
    """
    import tempfile

    from workbench.measure.cost import get_price
    from workbench.serving.engine import envs
    from workbench.serving.engine.export import checked_engine_manifest
    from workbench.serving.engine.server import split_cpus

    if isinstance(bundles, (str, Path)):
        bundles = {None: Path(bundles)}
    bundles = {k: Path(v) for k, v in bundles.items()}
    if not bundles:
        raise ValueError("no engine bundle given: pass a bundle folder or {precision: bundle}")
    if (slo_ttft_ms is None) != (slo_itl_ms is None) or any(v is not None and v <= 0 for v in (slo_ttft_ms, slo_itl_ms)):
        raise ValueError(f"SLO TTFT {slo_ttft_ms} / ITL {slo_itl_ms} ms: give both (> 0) or neither (derived from "
                         "the default engine's idle latency)")
    if not 0 < attainment <= 1 or budget_s <= 0 or point_s <= 0 or max_points < 2:
        raise ValueError(f"attainment ({attainment}) in (0, 1], budget_s ({budget_s}) and point_s ({point_s}) > 0 and "
                         f"max_points ({max_points}) >= 2 are needed")
    wl = get_workload(workload) if isinstance(workload, str) else workload
    precisions = {}
    for key, bundle in bundles.items():
        manifest = checked_engine_manifest(bundle)
        precisions[bundle] = key or manifest["checkpoint"]["precision"]
    if use_aiperf is None:
        use_aiperf = envs.available()[0]
    engine_cpus, client_cpus, cpu_note = split_cpus()
    ctx = {"price": get_price(instance), "engine_cpus": engine_cpus, "client_cpus": client_cpus, "table": table,
           "progress": progress or (lambda msg: None), "attainment": attainment, "point_s": point_s,
           "max_points": max_points, "workload": wl}
    first = next(iter(bundles.values()))
    result = EngineSearchResult(slo_ttft_ms or 0.0, slo_itl_ms or 0.0, wl, [],
                                notes=[cpu_note] if cpu_note else [], attainment=attainment, point_s=point_s,
                                max_points=max_points)
    with tempfile.TemporaryDirectory(prefix="workbench-engine-search-") as tmp:
        ctx["work"] = Path(work_dir) if work_dir else Path(tmp)
        # vLLM's own compute dtype for the bf16 checkpoint, whatever the export chose: the headline's baseline
        default = EngineCandidate(precisions[first], first, dataclasses.replace(_bundle_args(first),
                                                                                dtype=VLLM_AUTO_DTYPE), "default")
        _run(default, ctx, result, derive_slo=slo_ttft_ms is None)
        result.candidates.append(default)
        deadline = time.monotonic() + budget_s
        queue = [EngineCandidate(precisions[b], b, default.args, "precision") for b in list(bundles.values())[1:]]

        def try_all(cands):
            for cand in cands:
                if time.monotonic() > deadline:
                    result.skipped.append(f"{cand.label} ({cand.stage})")
                    continue
                if any(c.label == cand.label for c in result.candidates):
                    continue
                _run(cand, ctx, result)
                result.candidates.append(cand)

        try_all(queue)
        for stage, make in engine_space(default.args, wl, small, notes=result.notes):
            best = result.winner or default
            try:
                args = make(best.args)
            except ValueError as exc:   # not a valid engine config (e.g. a batched-token budget below the width)
                result.notes.append(f"{stage}: {exc}")
                continue
            try_all([EngineCandidate(best.precision, best.bundle, args, stage)])
        win = result.winner
        if win is not None:
            confirm = EngineCandidate(win.precision, win.bundle, win.args, "confirm",
                                      min_requests=confirm_requests(attainment), halvings=CONFIRM_HALVINGS)
            _run(confirm, ctx, result, use_aiperf=use_aiperf, start=win.goodput_per_s / 2, on_confirm=on_confirm)
            result.confirmed = confirm
            # the headline's other side, measured the same way (when the default won, its confirmation is both)
            if win.label == default.label:
                result.default_confirmed = confirm
            elif default.goodput_per_s:
                again = EngineCandidate(default.precision, default.bundle, default.args, "confirm-default",
                                        min_requests=confirm.min_requests, halvings=CONFIRM_HALVINGS)
                _run(again, ctx, result, use_aiperf=use_aiperf, start=default.goodput_per_s / 2)
                result.default_confirmed = again
    return result


def _bundle_args(bundle: Path) -> EngineArgs:
    import json

    return EngineArgs.from_dict(json.loads((bundle / "engine_args.json").read_text()))


def _run(cand: EngineCandidate, ctx: dict, result: EngineSearchResult, derive_slo: bool = False,
         use_aiperf: bool = False, start: float | None = None, on_confirm: Callable | None = None) -> None:
    """Start the candidate's engine, climb to its goodput, stop it; an engine that fails is the candidate's error."""
    from workbench.serving.engine.load import SCENARIO, measure_point
    from workbench.serving.engine.server import VllmServer
    from workbench.serving.load.schedule import schedule

    say, wl = ctx["progress"], ctx["workload"]
    ckpt = cand.bundle / "checkpoint"
    t0 = time.perf_counter()
    say(f"[{cand.stage}] {cand.label}: starting vLLM ...")
    base = {"scenario": SCENARIO, "bundle": str(cand.bundle), "engine": "vllm", "precision": cand.precision,
            "engine_args": cand.args.label(), "search_stage": cand.stage, "arrival": "poisson", **wl.columns(),
            "engine_cpus": len(ctx["engine_cpus"]), "client_cpus": len(ctx["client_cpus"])}
    try:
        with VllmServer(ckpt, cand.args, ctx["work"] / f"vllm-{cand.stage}-{cand.label}.log",
                        cpus=ctx["engine_cpus"]) as server:
            cand.startup_s = server.startup_s
            if result.idle is None:
                result.idle = idle_latency(server, ckpt, wl, ctx["client_cpus"], burst=cand.args.max_num_seqs)
                if derive_slo:
                    result.slo_ttft_ms = round(SLO_TTFT_X * result.idle["ttft_ms_p50"], 1)
                    result.slo_itl_ms = round(SLO_ITL_X * result.idle["itl_ms_p50"], 2)
                say(f"  idle {result.idle}; SLO TTFT p99 <= {result.slo_ttft_ms} ms, ITL p99 <= {result.slo_itl_ms} ms")
                cand.idle = result.idle
            elif cand.stage == "confirm":   # ~6 idle requests and a burst before the climb: its prediction's scale
                cand.idle = idle_latency(server, ckpt, wl, ctx["client_cpus"], burst=cand.args.max_num_seqs)
                say(f"  idle {cand.idle}")

            def measure(rate: float, k: int) -> dict:
                n = point_requests(rate, ctx["point_s"], cand.min_requests)
                prompts, lens = wl.prompts(ckpt, n, seed=100 + k)
                offsets = schedule(rate, n, "poisson", seed=k)
                row = measure_point(server, ckpt, prompts, lens, offsets, wl.new_tokens, result.slo_ttft_ms,
                                    result.slo_itl_ms, ctx["attainment"], ctx["client_cpus"],
                                    ctx["work"] / f"{cand.stage}-{cand.label}-p{k}", ctx["price"],
                                    own_client=True, use_aiperf=use_aiperf, aiperf_first=k % 2 == 0)
                row = {**base, "engine_startup_s": server.startup_s, **row, "offered_rate_per_s": rate,
                       **({"confirm_requests_wanted": cand.min_requests} if n < cand.min_requests else {})}
                say(f"    {rate:.3f}/s: TTFT p50 {row.get('ttft_ms_p50')} p99 {row.get('ttft_ms_p99')} ms, ITL p99 "
                    f"{row.get('itl_ms_p99')} ms, within SLO {row['slo_attainment']:.0%} ({row['slo_outcome']})"
                    + (f"; own client TTFT p50 {row.get('own_ttft_ms_p50')} ms" if use_aiperf else ""))
                return ctx["table"].append(row) if ctx["table"] is not None else row

            r0 = cand.start_rate = start or max(0.05, round(1.0 / result.idle["e2e_s_p50"], 3))
            cand.rows, cand.goodput_per_s = climb(measure, r0, ctx["max_points"], cand.halvings)
            if on_confirm is not None:
                on_confirm(server, cand, result)
    except Exception as exc:   # an engine that cannot start or dies with this config: a failed candidate
        cand.error = f"{type(exc).__name__}: {str(exc)[-600:]}"
        if cand.stage in ("default", "confirm"):
            raise
    finally:
        cand.seconds = time.perf_counter() - t0
        say(f"  {cand.label} ({cand.stage}): goodput {cand.goodput_per_s}/s"
            + (f"; failed: {cand.error.splitlines()[0][:160]}" if cand.error else ""))
        if ctx["table"] is not None:
            ctx["table"].append({**base, "scenario": SUMMARY_SCENARIO, **cand.summary(),
                                 "slo_ttft_ms": result.slo_ttft_ms, "slo_itl_ms": result.slo_itl_ms})


def write_search(bundle: str | Path, result: EngineSearchResult) -> dict:
    """Put the confirmed winner into ``bundle``: engine_args.json, Triton's model.json, the card (its confirmed load
    curve and every candidate) and the manifest (checksums of every file), each replaced atomically, manifest last.
    Refused when the winner's checkpoint is another bundle's (export that one, or search this bundle alone)."""
    from workbench.serving.engine.export import rewrite_engine_facts

    win = result.confirmed
    if win is None:
        raise ValueError("no confirmed winner to write: no candidate met the SLO at any rate tried (loosen the SLO)")
    bundle = Path(bundle)
    if win.bundle.resolve() != bundle.resolve():
        raise ValueError(f"the winner is {win.precision} ({win.bundle}), not the checkpoint in {bundle}: write it into "
                         f"{win.bundle}")
    keep = ("offered_rate_per_s", "ttft_ms_p50", "ttft_ms_p99", "itl_ms_p99", "tpot_ms_p50", "output_tokens_per_s",
            "meets_slo", "usd_per_1m_input_tokens", "usd_per_1m_cached_input_tokens", "usd_per_1m_output_tokens")
    load = {"slo_ttft_ms": result.slo_ttft_ms, "slo_itl_ms": result.slo_itl_ms, "goodput_per_s": win.goodput_per_s,
            "engine_label": win.args.label(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "workload": result.workload.name, "rows": [{k: r.get(k) for k in keep} for r in win.rows],
            "candidates": [c.summary() for c in result.candidates]}
    return rewrite_engine_facts(bundle, {"load": load, "engine_search": result.as_dict()}, engine_args=win.args)


__all__ = ["search_engine", "write_search", "engine_space", "climb", "point_requests", "confirm_requests",
           "idle_latency", "EngineSearchResult", "EngineCandidate", "SUMMARY_SCENARIO"]
