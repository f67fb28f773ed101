"""Streaming open-loop load (workbench.serving.load.stream) against a decoupled Python-backend model in real Triton.

The streamer model's first token comes after FIRST_MS and one more every GAP_MS, so TTFT, TPOT and ITL have known
floors; at a light load (4 instances, far below saturation) the measured values sit just above them."""
import pytest

from workbench.serving.load.stream import open_loop_stream

pytestmark = pytest.mark.serial   # times load on cores it pins: make test runs it alone (serial)

FIRST_MS, GAP_MS, TOKENS = 20.0, 10.0, 6


@pytest.fixture(scope="module")
def streamer(tmp_path_factory):
    from workbench.serving.bundle.triton_server import TritonServer
    from workbench.serving.load.streamer import streamer_repository

    work = tmp_path_factory.mktemp("streamer")
    backends, repo, dist = streamer_repository(work, FIRST_MS, GAP_MS, instances=4)
    with TritonServer(repo, backends, dist, work / "server.log") as server:
        yield server


@pytest.mark.integration
def test_ttft_tpot_itl_from_the_scheduled_send(streamer):
    res = open_loop_stream(streamer.url, "streamer", lambda i: {"MAX_TOKENS": TOKENS}, rate_per_s=10,
                           n_requests=60, warmup_s=0.5, seed=2)
    print("\n", res.as_row())
    assert res.errors == 0 and res.n_ok == res.n_measured and res.tokens_mean == TOKENS
    assert res.ttft["ttft_p50_ms"] >= FIRST_MS                       # never faster than the model's first token
    assert res.tpot["tpot_p50_ms"] >= GAP_MS * 0.9                   # server-side gaps are sleeps of GAP_MS
    assert res.itl["itl_p50_n"] == res.n_ok * (TOKENS - 1)           # every gap of every request is pooled
    assert res.ttft["ttft_p99_ms"] is None and "ttft_p99_note" in res.ttft   # 55 samples: no p99
    row = res.as_row()
    assert row["ttft_p50_ms"] == res.ttft["ttft_p50_ms"] and "itl_p90_ms" in row
    assert 0 < row["client_cpu_share"] < 0.5 and row["server_cpus"] and "client_apart" in row
    # a stream's send time is taken once its connection is open and the request written: TTFT from the actual
    # send is at most TTFT from the scheduled one
    assert all(a <= b + 1e-6 for a, b in zip(res.ttft_sent_ms, res.ttft_ms))


def test_stream_load_refuses_bad_input():
    with pytest.raises(ValueError, match="loopback only"):
        open_loop_stream("10.1.1.1:8000", "m", lambda i: {}, 10, 10)
    with pytest.raises(ValueError, match="n_requests"):
        open_loop_stream("127.0.0.1:1", "m", lambda i: {}, 10, 1)
