"""The load generator's honesty checks run for real: the sleeper model (:mod:`workbench.serving.load.sleeper`) on a
Triton server, open-loop Poisson traffic, and the measured latencies held to M/D/1 (:mod:`workbench.serving.load.md1`)
replayed on the run's own arrivals; then the coordinated-omission stall check (the model stalls mid-run).

S is Triton's own compute time for the requests sent, and what the client and HTTP add outside the server is measured
one request at a time on the same server (``client_overhead_ms``): nothing in the prediction is assumed.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable

RHOS = (0.5, 0.8, 0.9)


def _quiet(msg: str) -> None:
    pass


def md1_on_triton(rhos=RHOS, n_base: int = 300, sleep_ms: float = 15.0, mode: str = "sleep",
                  log: Callable[[str], None] = _quiet) -> dict:
    """{str(rho): figures} at each utilisation: mean / p90 / p99 against M/D/1 (``md1.md1_check``), with the point's
    validity, the client's CPU share and send lag, offered and sent rates, and the client's / server's CPUs.

    ``n_base`` requests at rho 0 (``n_base / sqrt(1 - rho)`` at rho: busier queues need more arrivals to settle);
    ``mode``: the sleeper sleeps (``"sleep"``) or burns CPU (``"spin"``) for ``sleep_ms`` per request."""
    from workbench.serving.bundle.triton_server import TritonServer
    from workbench.serving.load.md1 import client_overhead_ms, md1_check
    from workbench.serving.load.open_loop import open_loop
    from workbench.serving.load.sleeper import sleeper_input, sleeper_repository

    out = {}
    with tempfile.TemporaryDirectory(prefix="md1-") as tmp:
        backends, repo, dist = sleeper_repository(Path(tmp), sleep_ms, mode=mode)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            open_loop(server.url, "sleeper", sleeper_input, 10, 20, warmup_s=0.0)  # the backend stub's warm-up
            over = client_overhead_ms(server.url, "sleeper", sleeper_input)
            for seed, rho in enumerate(rhos):
                rate = rho / over["sync_service_ms"] * 1e3
                res = open_loop(server.url, "sleeper", sleeper_input, rate, int(n_base / (1 - rho) ** 0.5),
                                warmup_s=1.0, seed=seed)
                c = md1_check(res, res.server["compute_ms"], over["overhead_ms"])
                out[str(rho)] = {**c, "valid": res.valid, "client_cpu_share": res.client["client_cpu_share"],
                                 "send_lag_p99_ms": res.send_lag_p99_ms, "offered_per_s": res.offered_rate_per_s,
                                 "sent_per_s": res.achieved_rate_per_s,
                                 "client_cpus": res.client["client_cpus"], "server_cpus": res.client["server_cpus"]}
                log(f"  M/D/1 ({mode}) rho {c['rho']}: mean {c['mean_ms']} vs {c['predicted_mean_ms']} ms "
                    f"({c['mean_error_pct']:+.1f}%), p99 {c['p99_ms']} vs {c['predicted_p99_ms']} ms "
                    f"({c['p99_error_pct']:+.1f}%), client CPU {res.client['client_cpu_share']}")
    return out


def stall_on_triton(rate: float = 40.0, n: int = 240, at: int = 60, stall_ms: float = 1000.0,
                    log: Callable[[str], None] = _quiet) -> dict:
    """Coordinated omission: the sleeper (15 ms) stalls ``stall_ms`` at request ``at`` of an open-loop run of ``n``
    requests at ``rate``/s; ``md1.stall_check``'s figures (every request scheduled during the stall must show it), with
    the run's validity and error count."""
    from workbench.serving.bundle.triton_server import TritonServer
    from workbench.serving.load.md1 import client_overhead_ms, stall_check
    from workbench.serving.load.open_loop import open_loop
    from workbench.serving.load.sleeper import sleeper_input, sleeper_repository

    with tempfile.TemporaryDirectory(prefix="stall-") as tmp:
        backends, repo, dist = sleeper_repository(Path(tmp), 15.0, stall_at=at, stall_ms=stall_ms)
        with TritonServer(repo, backends, dist, Path(tmp) / "server.log") as server:
            res = open_loop(server.url, "sleeper", sleeper_input, rate, n, warmup_s=0.0, seed=5)
            service = (res.server["compute_ms"] * n - stall_ms) / n   # Triton's mean includes the stall once
            over = client_overhead_ms(server.url, "sleeper", sleeper_input, n=20)
    out = {**stall_check(res, at, stall_ms, service, over["overhead_ms"]), "valid": res.valid, "errors": res.errors}
    log(f"  stall {stall_ms:.0f} ms: {out['scheduled_during_stall']} requests scheduled during it, all show it: "
        f"{out['every_request_shows_it']}; p99 {out['p99_ms']} ms (replay {out['predicted_p99_ms']}, without the "
        f"stall {out['predicted_p99_without_stall_ms']})")
    return out


__all__ = ["md1_on_triton", "stall_on_triton", "RHOS"]
