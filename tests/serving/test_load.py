"""Open-loop load generator (workbench.serving.load) against a real Triton server on loopback.

The honesty proof: a test-only Python-backend model with a fixed service time (one instance, no batching) is an
M/D/1 queue. Poisson arrivals at utilisation rho must give the M/D/1 mean (Pollaczek-Khinchine) and tail (Lindley's
recursion on the very arrivals sent), like with like: S from Triton's own statistics, the client/HTTP overhead
measured one request at a time the same way. The CPU-bound model (it burns its service time on its own core) would
show a client that takes the server's CPU. (The 1 s stall check: tests/serving/load/test_md1_run.py.)
"""
import numpy as np
import pytest

from workbench.serving.load.md1 import client_overhead_ms, lindley_waits_ms, md1_check, md1_mean_ms
from workbench.serving.load.open_loop import open_loop, percentiles
from workbench.serving.load.client import split_url
from workbench.serving.load.schedule import schedule
from workbench.serving.load.sleeper import sleeper_input as one_input, sleeper_repository

pytestmark = pytest.mark.serial   # times load on cores it pins: make test runs it alone (serial)

SLEEP_MS = 15.0  # long enough that the ~1 ms of HTTP + backend overhead outside the queue stays small


def _server(tmp_path_factory, name, **kw):
    from workbench.serving.bundle.triton_server import TritonServer

    work = tmp_path_factory.mktemp(name)
    backends, repo, dist = sleeper_repository(work, SLEEP_MS, **kw)
    return TritonServer(repo, backends, dist, work / "server.log")


@pytest.fixture(scope="module", params=["sleep", "spin"])
def model(request, tmp_path_factory):
    """The sleeping model (no CPU) and the CPU-bound one (a client on the server's core would stretch every
    service time; other load on the machine does too, so it is held to M/D/1 at rho 0.5 only)."""
    with _server(tmp_path_factory, request.param, mode=request.param) as server:
        open_loop(server.url, "sleeper", one_input, 20, 20, warmup_s=0.0)   # stub warm-up
        yield request.param, server, client_overhead_ms(server.url, "sleeper", one_input)


@pytest.mark.integration
# Two utilisations bracket the curve: the queue term at 0.8 is 4x that at 0.5. Not 0.9: the service time a run
# measures drifts above the one-at-a-time figure the rate is set from, and a run here landed at rho 0.95, where the
# sleep's own jitter put the mean 18% above the replay.
@pytest.mark.parametrize("rho,n", [(0.5, 400), (0.8, 700)])
def test_poisson_latency_matches_md1_mean_and_tail(model, rho, n):
    mode, server, over = model
    if mode == "spin" and rho > 0.5:
        pytest.skip("the CPU-bound model's service time moves with the machine's other load: held at rho 0.5")
    n = n if mode == "sleep" else 250
    # Rate from the service time measured one at a time; the prediction uses S measured by Triton over this run.
    res = open_loop(server.url, "sleeper", one_input, rho / over["sync_service_ms"] * 1e3, n, warmup_s=1.0, seed=1)
    check = md1_check(res, res.server["compute_ms"], over["overhead_ms"])
    print(f"\nrho {check['rho']}: {check}; client {res.client}; lag p99 {res.send_lag_p99_ms} ms")
    assert res.errors == 0 and res.timeouts == 0 and res.n_ok == res.n_measured and res.valid, res.notes
    assert res.server["requests"] == n  # every request reached the model exactly once
    assert res.client["client_apart"] and res.client["client_cpus"] not in res.client["server_cpus"].split(",")
    assert 0 < res.client["client_cpu_share"] < 0.5   # a sleeping client: a small share of its own core
    assert abs(check["mean_error_pct"]) <= 15, check
    assert abs(check["p90_error_pct"]) <= 15, check
    # The CPU-bound service stretches with whatever else runs on the server's core, and its 250 requests put its
    # p99 on the two or three slowest: one scheduling hiccup there read 40% over the replay here while its mean and
    # p90 stayed within 10%. Its p99 is reported, not held; the sleeping model's is.
    if mode == "sleep":
        assert abs(check["p99_error_pct"]) <= 15, check
    sched = np.asarray(res.scheduled_s)[-res.n_measured:]
    assert res.achieved_rate_per_s == pytest.approx((len(sched) - 1) / (sched[-1] - sched[0]), rel=0.03)
    assert res.latency["latency_p99.9_ms"] is None and res.latency["latency_p99.9_note"] == f"n={res.n_measured} < 2000"


@pytest.mark.integration
def test_a_client_that_cannot_keep_up_is_client_limited(tmp_path_factory):
    from workbench.serving.load.sweep import slo_outcome

    with _server(tmp_path_factory, "limited") as server:
        res = open_loop(server.url, "sleeper", one_input, 20_000, 400, warmup_s=0.0, timeout_s=15, seed=3)
    assert res.client_limited and not res.valid and "client-limited" in res.notes[0], res.notes
    assert slo_outcome(res.valid, res.errors, res.within(1e9), 0.99) == "client-limited"   # neither pass nor miss
    assert res.errors == 0  # the server queues them all; latency from the scheduled time shows the backlog


def test_lindley_replay_and_md1_mean():
    # Arrivals every 10 ms, service 15 ms: each waits 5 ms more than the one before.
    assert list(lindley_waits_ms(np.arange(5) * 0.01, 15.0)) == pytest.approx([0, 5, 10, 15, 20])
    assert list(lindley_waits_ms(np.arange(3) * 0.02, 15.0)) == [0, 0, 0]
    assert list(lindley_waits_ms(np.arange(3) * 0.02, 15.0, [100, 0, 0])) == pytest.approx([0, 95, 90])
    # A long Poisson replay converges on Pollaczek-Khinchine's mean wait rho*S / (2(1 - rho)).
    t = schedule(0.8 / 15.0 * 1e3, 200_000, seed=1)
    assert lindley_waits_ms(t, 15.0).mean() + 15.0 == pytest.approx(md1_mean_ms(15.0, 0.8), rel=0.05)
    with pytest.raises(ValueError, match="utilisation"):
        md1_mean_ms(15.0, 1.0)


def test_goodput_of_stops_at_a_client_limit():
    from workbench.serving.load.sweep import climb_end, goodput_of, goodput_text

    rows = [{"offered_rate_per_s": r, "slo_outcome": o} for r, o in ((10, "pass"), (20, "pass"),
                                                                      (30, "client-limited"), (40, "pass"))]
    assert goodput_of(rows) == 20 and climb_end(rows) == "client-limited"
    assert goodput_text(20, "client-limited") == ">= 20/s (client limited)"
    assert goodput_text(20, "miss") == "20/s" and goodput_text(None, "miss") == "none"
    assert goodput_of([{"offered_rate_per_s": 5, "meets_slo": True}, {"offered_rate_per_s": 9, "meets_slo": False}]) == 5


def test_cpu_split_gives_the_client_its_own_cpu(monkeypatch):
    from workbench.serving.load.pinned import cpu_split

    monkeypatch.setenv("WORKBENCH_CLIENT_CPUS", "1")
    split = cpu_split()
    avail = sorted(__import__("os").sched_getaffinity(0))
    if len(avail) > 1:
        assert split["client_apart"] and set(split["client_cpus"]).isdisjoint(split["server_cpus"])
        assert sorted(split["client_cpus"] + split["server_cpus"]) == avail
    monkeypatch.setenv("WORKBENCH_CLIENT_CPUS", "0")
    assert not cpu_split()["client_apart"]
    monkeypatch.setenv("WORKBENCH_CLIENT_CPUS", "x")
    with pytest.raises(ValueError, match="WORKBENCH_CLIENT_CPUS"):
        cpu_split()


@pytest.mark.integration
def test_goodput_sweep_rows_knee_and_goodput(tmp_path_factory):
    from workbench.results import ResultsTable
    from workbench.serving.load.sweep import goodput

    table = ResultsTable()
    with _server(tmp_path_factory, "sweep") as server:
        out = goodput(server.url, "sleeper", one_input, slo_ms=60, rates=[15, 60], n_requests=150, warmup_s=0.5,
                      row={"variant": "sleeper"}, table=table)
    assert 40 < out.capacity_per_s < 70  # one request at a time: 1 / (15 ms sleep + overhead)
    assert [r["scenario"] for r in table.rows] == ["load", "load"] and table.rows[0]["variant"] == "sleeper"
    assert table.rows[0]["slo_outcome"] == "pass" and out.goodput_per_s in (15.0, 60.0)
    assert all(r["client_cpu_share"] is not None and r["server_cpus"] for r in table.rows)
    assert out.knee_per_s == 15.0  # at 60/s (rho ~0.95) the mean is far above twice the light-load mean
    print("\n" + out.to_text())
    assert "goodput" in out.to_text()


def test_loopback_only_and_bounds():
    for url in ("10.0.0.1:8000", "http://example.com:8000", "[fe80::1]:8000"):
        with pytest.raises(ValueError, match="loopback only"):
            open_loop(url, "m", one_input, 10, 10)
    assert split_url("http://localhost:8000/v2") == ("localhost", 8000) and split_url("[::1]:9") == ("::1", 9)
    with pytest.raises(ValueError, match="n_requests"):
        open_loop("127.0.0.1:1", "m", one_input, 10, 10**6)


def test_schedule_is_seeded_and_has_the_offered_rate():
    for arrival, cv in (("constant", 0.0), ("poisson", 1.0), ("gamma", 2.0)):
        t = schedule(50.0, 4001, arrival, burstiness=cv, seed=7)
        gaps = np.diff(t)
        assert t[0] == 0 and np.all(gaps >= 0)
        assert gaps.mean() == pytest.approx(1 / 50.0, rel=0.01)
        assert gaps.std() / gaps.mean() == pytest.approx(cv, abs=0.1)
        assert np.array_equal(t, schedule(50.0, 4001, arrival, burstiness=cv, seed=7))
    with pytest.raises(ValueError, match="arrival"):
        schedule(1, 10, "bursty")


def test_the_send_loop_sleeps_instead_of_spinning():
    """The sending loop never polls the clock: its source has no spin on asyncio.sleep(0)."""
    import inspect

    from workbench.serving.load import schedule as sched

    src = inspect.getsource(sched.run_schedule)
    assert "sleep(0)" not in src and "while time.perf_counter()" not in src


def test_percentiles_need_enough_samples():
    p = percentiles(np.arange(300.0))
    assert p["latency_p99_ms"] is not None and p["latency_p99_n"] == 300
    assert p["latency_p99.9_ms"] is None and p["latency_p99.9_note"] == "n=300 < 2000"
    assert percentiles(np.arange(10.0))["latency_p90_note"] == "n=10 < 20"


@pytest.mark.integration
def test_cli_load_serves_the_bundle_and_appends_rows(tmp_path, monkeypatch, capsys):
    import json

    from demo_bundle import demo_setup

    from workbench.cli import main

    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path))
    bundle = demo_setup()[3]
    assert main(["load", str(bundle), "--rates", "5,15", "--slo-ms", "2000", "--requests", "40",
                 "--warmup-s", "0.5", "--study", "s"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "s" / "results.jsonl").read_text().splitlines()]
    assert [r["scenario"] for r in rows] == ["load", "load"] and [r["offered_rate_per_s"] for r in rows] == [5, 15]
    assert all(r["n_ok"] == r["n_measured"] and r["variant_id"] and r["environment_id"] for r in rows)
    assert all(r["client_cpu_share"] is not None and "client_apart" in r for r in rows)
    out = capsys.readouterr().out
    assert "goodput" in out and "results.jsonl" in out
    assert main(["load", str(bundle), "--rates", "0", "--slo-ms", "10"]) == 2
