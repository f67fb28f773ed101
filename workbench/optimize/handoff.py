"""The hand-off of an optimize run: the serving bundle of the pick and a short open-loop load check of it.

The Triton bundle (``serving.bundle.export``) ships an ONNX graph. A pick that runs ONNX Runtime ships as measured; a
torch pick ships its validated ONNX export (export sweeps that graph itself, so the bundle's plan is the shipped
file's own figures); a pick the ONNX bundle cannot carry (an OpenVINO IR, an arm with no variant) ships the cheapest
arm that met the SLO and can be carried, and a run where nothing could ship within the SLO ships the baseline planned
without it; the note says which and why. The load check serves the bundle on Triton (loopback, a
free port, bounded) and offers one open-loop point at half the model's one-at-a-time capacity; it is skipped with a
reason when Triton is not installed or the budget is short.
"""
from __future__ import annotations

import math
from pathlib import Path

LOAD_REQUESTS = 200          # one point: enough for a p99 (timing.MIN_SAMPLES) at a bounded wall time
# Small mode (CI, WORKBENCH_SMALL=1): the same path on 50 requests. The demo classifier's bundle took ~10 requests/s
# one at a time here, so its check point (4.8/s) ran ~11 s of arrivals instead of ~43; a p99 then reads as absent
# (fewer than timing.MIN_SAMPLES), never as a number.
LOAD_REQUESTS_SMALL = 50
LOAD_WARMUP_S = 1.0          # open_loop's default warm-up (its requests are not counted)
LOAD_FRACTION = 0.5          # of the one-at-a-time capacity: a check that the SLO holds under real arrivals


def _sweep_as_batching(rows: list[dict]) -> list[dict]:
    return [{**r, "scenario": r.get("sweep_scenario", "batching")} for r in rows if not r.get("failed")]


def _order(s) -> list[str]:
    """Arms worth bundling, best first: the pick, then the other arms that met the SLO by cost, then the baseline."""
    first = s.instances[0]
    met = sorted((e for e in s.entries.values() if e.slo and e.slo.get("feasible") and e.arm != s.winner),
                 key=lambda e: e.slo["usd_per_1m"][first])
    names = ([s.winner] if s.winner else []) + [e.arm for e in met] + [s.baseline]
    return list(dict.fromkeys(names))


def bundle(s, dest: Path) -> tuple[str | None, str]:
    """(bundle folder or None, what was shipped and why). The first arm of :func:`_order` the ONNX bundle can carry
    ships; an export that fails moves on to the next one, and the note says why."""
    from workbench.runtime import onnx_file, torch_module
    from workbench.serving.bundle.export import export_bundle

    passed = []
    for name in _order(s):
        variant = s.build(name).variant
        if variant is None or (onnx_file(variant) is None and torch_module(variant) is None):
            passed.append(f"{name} runs {getattr(variant, 'backend', 'outside a variant')}, which the Triton ONNX "
                          "bundle cannot carry")
            continue
        rows = _sweep_as_batching([r for r in s.store.rows("sweep") + s.store.rows("confirm") if r.get("arm") == name])
        try:
            path = export_bundle(variant, rows, to=dest, task=s.task, slo_ms=s.slo_ms, percentile=s.percentile,
                                 instance=s.instances[0], overwrite=True, threads=s.ctx.threads, allow_unstable=True)
        except Exception as exc:  # noqa: BLE001 - e.g. a graph ONNX cannot express, or an SLO its export misses
            passed.append(f"exporting {name} failed ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        what = "the pick" if name == s.winner else "the baseline" if name == s.baseline else "the cheapest eligible arm"
        return str(path), f"bundle of {what} {name}" + (f" ({'; '.join(passed)})" if passed else "")
    # nothing met the SLO (or exported): the baseline still ships, planned on the batches that ran, so the serving
    # team has the model and the reasons rather than nothing
    rows = _sweep_as_batching([r for r in s.store.rows("sweep") if r.get("arm") == s.baseline])
    path = export_bundle(s.build(s.baseline).variant, rows, to=dest, task=s.task, slo_ms=None,
                         percentile=s.percentile, instance=s.instances[0], overwrite=True, threads=s.ctx.threads,
                         allow_unstable=True)
    return str(path), (f"bundle of the baseline {s.baseline}, planned without the SLO (no arm could ship within it: "
                       + "; ".join(passed) + ")")


def triton_missing() -> str | None:
    """Why no Triton server can start here, else None."""
    from workbench.serving.bundle.triton_server import ServeCheckError, triton_distribution

    try:
        triton_distribution()
    except ServeCheckError as exc:
        return str(exc)
    return None


def load_check(bundle_dir: Path, slo_ms: float, percentile: str) -> tuple[dict, dict]:
    """(the decision's ``load_check``, the load row) from one open-loop point on the served bundle."""
    import tempfile

    from workbench.serving.bundle.triton_server import TritonServer, triton_distribution, twin_repository
    from workbench.serving.load.config_search import bundle_inputs
    from workbench.serving.load.sweep import measure_point, sync_capacity
    from workbench.util.settings import small_mode

    bundle_dir = Path(bundle_dir)
    manifest, make_inputs = bundle_inputs(bundle_dir)
    dist = triton_distribution()
    with tempfile.TemporaryDirectory(prefix="workbench-optimize-load-") as tmp:
        backends, repo = twin_repository(bundle_dir, manifest, Path(tmp), dist)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            cap = sync_capacity(server.url, manifest["name"], make_inputs, n=30)
            rate = LOAD_FRACTION * cap["capacity_per_s"]
            # the first second of arrivals is open_loop's warm-up: at a high rate 200 requests would all fall in it
            n_requests = (LOAD_REQUESTS_SMALL if small_mode() else LOAD_REQUESTS) + math.ceil(rate * LOAD_WARMUP_S)
            res, row = measure_point(server.url, manifest["name"], make_inputs, rate, n_requests, slo_ms, 0.99,
                                     cap, row={"bundle": str(bundle_dir), "model": manifest["name"]})
    tail = row.get(f"latency_{percentile}_ms")
    check = {"rate_per_s": round(rate, 2), "tail_ms": tail, "percentile": percentile,
             "slo_met": row.get("meets_slo") if row.get("slo_outcome") != "client-limited" else None,
             "outcome": row.get("slo_outcome"), "errors": row.get("errors")}
    return check, row


__all__ = ["bundle", "load_check", "triton_missing"]
