"""Serving-config search under load, in the spirit of Triton Model Analyzer: which batching and instance settings give
the most goodput (requests/s with >= 99% of them within the p99 SLO) on this machine.

Every candidate is loaded in the real Triton server (the bundle's Python-backend twin with the candidate's
``config.pbtxt`` settings) and driven by the open-loop generator. Goodput per candidate is found by a climb: start
at half the synchronous capacity, multiply the rate by ``growth`` while the SLO holds, then bisect ``refine`` times
between the last rate that held and the first that failed. The search itself is coarse-to-fine:

1. **baselines**: the bundle's exported config (today's offline plan) and no dynamic batching;
2. **coarse**: instance counts x max batch sizes (no queue delay, no preferred size);
3. **fine**: around the coarse winner, the queue delays (fractions of the SLO) x preferred batch size;
4. **confirm**: the winner (most goodput of single climbs, which favours a lucky climb) is climbed again on a fresh
   server; that confirmation is what the config, card and manifest quote (``confirmed``), and the headline ratio is
   confirmed goodput over the better baseline (exported or no batching, both measured in this run).

A climb that ends on a client-limited point (the load client, not the server, ran out: see
:mod:`workbench.serving.load.open_loop`) gives a lower bound, shown ``>= X (client limited)``; two candidates that
both hit the client's limit are not told apart by goodput, and the result says so.

A time budget bounds the whole search: candidates not reached are listed, never silently dropped. Each point is a
ResultsTable row (``scenario: "load"``, tagged with the candidate), each candidate a summary row
(``scenario: "load-search"``: goodput, knee, p99 at goodput, cost per 1k requests at goodput).
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from workbench.serving.load.client import LoadError
from workbench.serving.load.search_space import ClimbSettings, SearchSpace, climb
from workbench.serving.bundle.serving_config import ServingConfig


@dataclass
class Candidate:
    """One serving config and what the climb found."""

    config: ServingConfig
    stage: str
    goodput_per_s: float | None = None
    knee_per_s: float | None = None
    p99_at_goodput_ms: float | None = None
    points: list = field(default_factory=list)   # LoadResult per point, in the order measured
    rows: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def client_limited(self) -> bool:
        """The climb ended on a client-limited point: the goodput is a lower bound."""
        return any(r.get("slo_outcome") == "client-limited" for r in self.rows)

    @property
    def goodput_text(self) -> str:
        from workbench.serving.load.sweep import goodput_text

        return goodput_text(self.goodput_per_s, "client-limited" if self.client_limited else "miss")

    def summary(self) -> dict:
        shares = [r.get("client_cpu_share") for r in self.rows if r.get("client_cpu_share") is not None]
        return {"serving_config": self.config.label(), "stage": self.stage, "goodput_per_s": self.goodput_per_s,
                "goodput_client_limited": self.client_limited, "goodput": self.goodput_text,
                "knee_per_s": self.knee_per_s, "p99_at_goodput_ms": self.p99_at_goodput_ms,
                "client_cpu_share_max": max(shares) if shares else None,
                "points": len(self.points), "seconds": round(self.seconds, 1)}


@dataclass
class SearchResult:
    """Every candidate tried (baselines first), the winner, and what the budget left out."""

    bundle: str
    model: str
    slo_ms: float
    attainment: float
    capacity_per_s: float
    candidates: list[Candidate]
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    confirmed: Candidate | None = None   # the winner's config climbed again on a fresh server

    def _stage(self, stage: str) -> Candidate | None:
        return next((c for c in self.candidates if c.stage == stage), None)

    @property
    def exported(self) -> Candidate | None:
        return self._stage("exported")

    @property
    def no_batching(self) -> Candidate | None:
        return self._stage("no-batching")

    @property
    def winner(self) -> Candidate | None:
        """Most goodput of the search's climbs; ties go to the earlier (simpler) candidate."""
        scored = [c for c in self.candidates if c.goodput_per_s]
        return max(scored, key=lambda c: c.goodput_per_s) if scored else None

    @property
    def best_baseline(self) -> Candidate | None:
        """The better of the exported config and no batching (both measured in this run)."""
        base = [c for c in (self.exported, self.no_batching) if c is not None]
        return max(base, key=lambda c: c.goodput_per_s or 0.0) if base else None

    @property
    def headline_ratio(self) -> float | None:
        """Confirmed winner's goodput / the best baseline's (None when either is missing)."""
        win, base = self.confirmed, self.best_baseline
        if not win or not base or not win.goodput_per_s or not base.goodput_per_s:
            return None
        return round(win.goodput_per_s / base.goodput_per_s, 3)

    def to_text(self) -> str:
        lines = [f"{'candidate':34s} {'stage':12s} {'goodput/s':>10s} {'knee/s':>8s} {'p99@goodput ms':>15s} "
                 f"{'points':>6s} {'s':>6s}"]
        fmt = (lambda v, w: f"{v:{w}.2f}" if v is not None else f"{'-':>{w}s}")
        for c in self.candidates:
            mark = " *" if c is self.winner else ""
            lines.append(f"{c.config.label():34s} {c.stage:12s} {fmt(c.goodput_per_s, 10)} {fmt(c.knee_per_s, 8)} "
                         f"{fmt(c.p99_at_goodput_ms, 15)} {len(c.points):6d} {c.seconds:6.1f}{mark}")
        lines.append(f"goodput = highest rate with >= {self.attainment:.0%} of requests within {self.slo_ms} ms "
                     f"(p99 SLO); synchronous capacity {self.capacity_per_s:.1f}/s; * = winner")
        if self.confirmed is not None:
            base = self.best_baseline
            lines.append(f"confirmed winner {self.confirmed.config.label()}: {self.confirmed.goodput_text} (search "
                         f"climb {self.winner.goodput_text}); best baseline {base.config.label() if base else None} "
                         f"({base.stage if base else '-'}): {base.goodput_text if base else None}; ratio "
                         f"{self.headline_ratio}")
        limited = [c for c in self.candidates if c.client_limited]
        if len(limited) > 1:
            lines.append(f"{len(limited)} candidates hit the load client's limit, not the server's: their goodputs "
                         "are lower bounds and do not rank them")
        lines += [f"not tried (time budget): {s}" for s in self.skipped] + self.notes
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """What the bundle's manifest and model card quote: the *confirmed* winner's measured curve and goodput, and the
        baselines (the search climb's figure is kept as ``search_goodput_per_s``)."""
        win = self.confirmed or self.winner
        curve = sorted(((r.offered_rate_per_s, r.latency.get("latency_p50_ms"), r.latency.get("latency_p99_ms"),
                         round(r.within(self.slo_ms), 4), r.valid) for r in (win.points if win else [])))
        return {"slo_ms": self.slo_ms, "percentile": "p99", "attainment": self.attainment,
                "capacity_per_s": self.capacity_per_s, "winner": win.config.as_dict() if win else None,
                "goodput_per_s": win.goodput_per_s if win else None,
                "goodput": win.goodput_text if win else None, "confirmed": self.confirmed is not None,
                "search_goodput_per_s": self.winner.goodput_per_s if self.winner else None,
                "best_baseline": self.best_baseline.summary() if self.best_baseline else None,
                "goodput_over_best_baseline": self.headline_ratio,
                "knee_per_s": win.knee_per_s if win else None,
                "p99_at_goodput_ms": win.p99_at_goodput_ms if win else None,
                "curve": [dict(zip(("offered_per_s", "p50_ms", "p99_ms", "within_slo", "valid"), p)) for p in curve],
                "candidates": [c.summary() for c in self.candidates], "skipped": self.skipped,
                "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def bundle_inputs(bundle: Path) -> tuple[dict, Callable[[int], dict]]:
    """(manifest, make_inputs) for a checked bundle: request ``i`` is reference example ``i mod n``, batch 1."""
    import numpy as np

    from workbench.serving.bundle.verify import reference_arrays, servable_manifest

    manifest = servable_manifest(bundle)
    inputs, _ = reference_arrays(bundle)
    n_ref = len(next(iter(inputs.values())))

    def make_inputs(i: int) -> dict:
        k = i % n_ref
        return {name: np.ascontiguousarray(arr[k:k + 1]) for name, arr in inputs.items()}

    return manifest, make_inputs


def exported_config(bundle: Path, manifest: dict) -> ServingConfig:
    """The serving settings the bundle's ``config.pbtxt`` has now."""
    from workbench.serving.bundle.triton_config import check_model_config
    from workbench.serving.bundle.verify import model_paths

    config_path, _ = model_paths(bundle, manifest)
    return ServingConfig.from_model_config(check_model_config(config_path.read_text(), manifest["name"]))


def _try_candidate(cand: Candidate, ctx: dict, start_rate: float, settings: ClimbSettings) -> None:
    """Serve ``cand`` on a fresh Triton server, climb to its goodput; rows go to the table as they are measured."""
    from workbench.serving.load.sweep import knee_rate, measure_point, point_text, sync_capacity
    from workbench.serving.bundle.triton_server import TritonServer, twin_repository

    started = time.perf_counter()
    base = {**ctx["row"], "serving_config": cand.config.label(), "search_stage": cand.stage,
            **{f"config_{k}": v for k, v in cand.config.as_dict().items() if k != "label"}}
    with tempfile.TemporaryDirectory(prefix="workbench-search-") as tmp:
        backends, repo = twin_repository(ctx["bundle"], ctx["manifest"], Path(tmp), ctx["dist"], serving=cand.config)
        with TritonServer(repo, backends, ctx["dist"], Path(tmp) / "server.log") as server:
            sync_capacity(server.url, ctx["model"], ctx["make_inputs"], n=4 * cand.config.instance_count, warmup=2)

            def measure(rate: float):
                n = settings.measured + int(rate * settings.warmup_s) + 1
                try:
                    res, row = measure_point(server.url, ctx["model"], ctx["make_inputs"], round(rate, 3), n,
                                             ctx["slo_ms"], ctx["attainment"], ctx["capacity"], row=base,
                                             table=ctx["table"], warmup_s=settings.warmup_s,
                                             timeout_s=settings.timeout_s, seed=len(cand.points))
                except OSError:  # the statistics endpoint is gone: say why below if the server died
                    if server.process.poll() is None:
                        raise
                    res = row = None
                if res is not None:
                    cand.points.append(res)
                    cand.rows.append(row)
                if server.process.poll() is not None:  # the rows so far are in the table; stop the whole search
                    raise LoadError(f"Triton died while serving {cand.config.label()} (exit code "
                                    f"{server.process.returncode}); the {len(cand.points)} points done are kept. "
                                    f"Server log: {server.log_tail()}")
                if ctx["progress"]:
                    ctx["progress"](f"  {cand.config.label()}: {point_text(res, row)}")
                return res, row

            good, _ = climb(measure, start_rate, settings)
    cand.goodput_per_s = round(good, 3) if good else None
    cand.knee_per_s = knee_rate(cand.points)
    at = [r for r in cand.points if good and abs(r.offered_rate_per_s - round(good, 3)) < 1e-6]
    cand.p99_at_goodput_ms = at[-1].latency.get("latency_p99_ms") if at else None
    cand.seconds = time.perf_counter() - started


def _summary_row(cand: Candidate, ctx: dict, instance: str) -> dict:
    from workbench.measure.cost import get_price, usd_per_1k_requests

    try:
        price = get_price(instance)
        cost, note = (usd_per_1k_requests(price.usd_per_hour, cand.goodput_per_s) if cand.goodput_per_s else None), ""
    except (ValueError, KeyError, OSError) as exc:  # a broken price table costs the cost column, not the search
        cost, note = None, f"no cost: {exc}"
    row = {**ctx["row"], "scenario": "load-search", "batch_size": 1, **cand.summary(), "slo_ms": ctx["slo_ms"],
           "attainment": ctx["attainment"], "instance": instance, "usd_per_1k_requests_at_goodput": cost,
           "notes": note,
           **{f"config_{k}": v for k, v in cand.config.as_dict().items() if k != "label"}}
    return ctx["table"].append(row) if ctx["table"] is not None else row


def model_capacity(bundle: Path, manifest: dict, make_inputs, dist, no_batching: ServingConfig) -> dict:
    """Synchronous capacity (one request at a time) of the bundle's model served without dynamic batching.

    Not measured through the exported config: a queue delay whose preferred sizes exclude 1 holds every lone request
    for the whole delay, so a capacity measured through it is 1 / delay (9.5/s instead of 303/s on the demo bundle)
    and every rate scaled from it is far too low."""
    from workbench.serving.load.sweep import sync_capacity
    from workbench.serving.bundle.triton_server import TritonServer, twin_repository

    with tempfile.TemporaryDirectory(prefix="workbench-capacity-") as tmp:
        backends, repo = twin_repository(bundle, manifest, Path(tmp), dist, serving=no_batching)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            return sync_capacity(server.url, manifest["name"], make_inputs)


def search_config(bundle: str | Path, slo_ms: float, space: SearchSpace | None = None,
                  settings: ClimbSettings | None = None, attainment: float = 0.99, budget_s: float = 900.0,
                  table=None, instance: str = "c7i.large", progress: Callable[[str], None] | None = None) -> SearchResult:
    """Search serving configs of ``bundle`` for goodput under ``slo_ms`` (p99) on a real Triton server (loopback).

    Args:
        space: the grid (default :class:`SearchSpace`; ``SearchSpace.small()`` for a quick look).
        settings: how each candidate's goodput is climbed to (:class:`ClimbSettings`).
        attainment: share of requests that must meet ``slo_ms`` (0.99: a p99 SLO).
        budget_s: wall-clock budget; candidates not started by then are listed in ``skipped``.
        table: ResultsTable the point rows and one summary row per candidate go to, as they are measured.

    Raises:
        ServeCheckError: the bundle's model or its exported config does not load in Triton (with Triton's log line).
        LoadError: the server died mid-run (points done are in ``table``; the server is killed).

    Example:
        >>> result = search_config("artifacts/bundles/clf", slo_ms=50)   # doctest: +SKIP
        >>> result.winner.config.label(), result.winner.goodput_per_s
    """
    from workbench.serving.bundle.triton_server import triton_distribution
    from workbench.serving.bundle.serve_check import ServeCheckError

    if slo_ms <= 0 or not 0 < attainment <= 1 or budget_s <= 0:
        raise ValueError(f"slo_ms ({slo_ms}) and budget_s ({budget_s}) must be > 0, attainment ({attainment}) in (0, 1]")
    space, settings, bundle = space or SearchSpace(), settings or ClimbSettings(), Path(bundle)
    manifest, make_inputs = bundle_inputs(bundle)
    exported = exported_config(bundle, manifest)
    served = manifest.get("served") or {}
    ctx = {"bundle": bundle, "manifest": manifest, "dist": triton_distribution(), "model": manifest["name"],
           "make_inputs": make_inputs, "slo_ms": slo_ms, "attainment": attainment, "table": table,
           "progress": progress, "row": {"variant_id": served.get("variant_id"), "variant": served.get("variant"),
                                         "bundle": str(bundle), "model": manifest["name"]}}
    # no batching at the server's core count at most: more intra-op threads than cores would handicap the baseline
    from workbench.serving.load.pinned import cpu_split

    no_batching = ServingConfig.no_batching(exported.max_batch_size,
                                            min(exported.threads or 99, len(cpu_split()["server_cpus"])))
    ctx["capacity"] = model_capacity(bundle, manifest, make_inputs, ctx["dist"], no_batching)
    start_rate = 0.5 * ctx["capacity"]["capacity_per_s"]
    result = SearchResult(str(bundle), manifest["name"], slo_ms, attainment, ctx["capacity"]["capacity_per_s"], [])
    deadline = time.monotonic() + budget_s
    queue = [(exported, "exported"), (no_batching, "no-batching")] + [(c, "coarse") for c in space.coarse(slo_ms)]
    fine_done = False
    while queue:
        config, stage = queue.pop(0)
        if any(c.config == config for c in result.candidates):
            continue
        if time.monotonic() > deadline:
            result.skipped += [f"{c.label()} ({s})" for c, s in [(config, stage)] + queue]
            break
        cand = Candidate(config, stage)
        try:
            _try_candidate(cand, ctx, start_rate, settings)
        except ServeCheckError as exc:
            if stage == "exported":
                raise
            result.notes.append(f"{config.label()} did not load in Triton: {exc}")
            continue
        result.candidates.append(cand)
        _summary_row(cand, ctx, instance)
        if progress:
            progress(f"{config.label()} ({stage}): goodput {cand.goodput_per_s}/s, knee {cand.knee_per_s}/s")
        if not fine_done and not any(s == "coarse" for _, s in queue):
            fine_done = True
            best = max((c for c in result.candidates if c.stage == "coarse"),
                       key=lambda c: c.goodput_per_s or 0.0, default=None)
            if best is not None:
                queue += [(c, "fine") for c in space.fine(best.config, slo_ms)]
    win = result.winner
    if win is not None:   # a fresh climb of the winner: what gets quoted (the budget does not skip it)
        confirm = Candidate(win.config, "confirm")
        _try_candidate(confirm, ctx, start_rate, settings)
        _summary_row(confirm, ctx, instance)
        result.confirmed = confirm
        if progress:
            progress(f"{win.config.label()} (confirm): goodput {confirm.goodput_text} (search climb "
                     f"{win.goodput_text})")
    return result


__all__ = ["search_config", "SearchResult", "Candidate", "SearchSpace", "ClimbSettings", "climb", "bundle_inputs",
           "exported_config", "ServingConfig"]
