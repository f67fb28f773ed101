"""Open-loop load generator (workbench.serving.load) against a real Triton server on loopback.

The honesty proof: a test-only Python-backend model with a fixed service time (one instance, no batching) is an
M/D/1 queue; Poisson arrivals at utilisation rho must give the M/D/1 mean latency S + rho*S / (2(1 - rho)), with S
measured from Triton's own compute statistics, and the client must send at the offered rate.
"""
import numpy as np
import pytest

from workbench.serving.load import open_loop, percentiles, schedule, split_url
from workbench.serving.sleeper import md1_mean_ms, sleeper_input as one_input, sleeper_repository

SLEEP_MS = 15.0  # long enough that the ~1 ms of HTTP + backend overhead outside the queue stays small


@pytest.fixture(scope="module")
def sleeper(tmp_path_factory):
    from workbench.serving.serve_check import TritonServer

    work = tmp_path_factory.mktemp("sleeper")
    backends, repo, dist = sleeper_repository(work, SLEEP_MS)
    with TritonServer(repo, backends, dist, work / "server.log") as server:
        yield server


@pytest.mark.integration
@pytest.mark.parametrize("rho,n", [(0.5, 600), (0.8, 1300)])
def test_poisson_latency_matches_md1(sleeper, rho, n):
    # Rate set from the nominal service time; the prediction uses S measured by Triton over this very run.
    nominal_ms = SLEEP_MS + 0.8  # the sleep plus the Python backend's own overhead, as measured on this machine
    res = open_loop(sleeper.url, "sleeper", one_input, rho / nominal_ms * 1e3, n, warmup_s=1.0, seed=1)
    service = res.server["compute_ms"]
    rho_real = res.offered_rate_per_s * service / 1e3
    predicted = md1_mean_ms(service, rho_real)
    print(f"\nrho {rho_real:.3f}: S {service:.2f} ms, M/D/1 mean {predicted:.2f} ms, measured {res.latency_mean_ms:.2f} ms "
          f"(server queue {res.server['queue_ms']:.2f} ms, M/D/1 "
          f"{predicted - service:.2f}); sent {res.achieved_rate_per_s:.2f}/s of "
          f"{res.offered_rate_per_s:.2f}/s; send lag p99 {res.send_lag_p99_ms} ms; client_bound {res.client_bound}")
    assert res.errors == 0 and res.timeouts == 0 and res.n_ok == res.n_measured
    assert res.server["requests"] == n  # every request reached the model exactly once
    assert abs(res.latency_mean_ms - predicted) <= 0.10 * predicted, (res.latency_mean_ms, predicted)
    assert abs(res.achieved_rate_per_s - res.offered_rate_per_s) <= 0.03 * res.offered_rate_per_s
    assert res.latency["latency_p99_ms"] is not None and res.latency["latency_p99.9_ms"] is None
    assert res.latency["latency_p99.9_note"] == f"n={res.n_measured} < 2000"


@pytest.mark.integration
def test_client_that_cannot_keep_up_is_flagged(sleeper):
    res = open_loop(sleeper.url, "sleeper", one_input, 20_000, 400, warmup_s=0.0, timeout_s=15, seed=3)
    assert res.client_bound and not res.valid and "client-bound" in res.notes[0]
    assert res.errors == 0  # the server queues them all; latency from the scheduled time shows the backlog
    assert res.latency_mean_ms > 10 * SLEEP_MS


@pytest.mark.integration
def test_goodput_sweep_rows_knee_and_goodput(sleeper):
    from workbench.results import ResultsTable
    from workbench.serving.load_sweep import goodput

    table = ResultsTable()
    out = goodput(sleeper.url, "sleeper", one_input, slo_ms=60, rates=[15, 60], n_requests=150, warmup_s=0.5,
                  row={"variant": "sleeper"}, table=table)
    assert 40 < out.capacity_per_s < 70  # one request at a time: 1 / (15 ms sleep + overhead)
    assert [r["scenario"] for r in table.rows] == ["load", "load"] and table.rows[0]["variant"] == "sleeper"
    assert table.rows[0]["meets_slo"] and out.goodput_per_s in (15.0, 60.0)
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
    out = capsys.readouterr().out
    assert "goodput" in out and "results.jsonl" in out
    assert main(["load", str(bundle), "--rates", "0", "--slo-ms", "10"]) == 2
