"""The honesty checks on a real Triton server (the sleeper model): the M/D/1 figures per utilisation with the
client's figures beside them, and the coordinated-omission stall showing in every request scheduled during it.
(The generator itself is held to M/D/1 within 15% in tests/serving/test_load.py.)"""
import pytest

from workbench.serving.load.md1_run import md1_on_triton, stall_on_triton

pytestmark = [pytest.mark.integration, pytest.mark.serial]   # starts Triton; times load: run alone


def test_md1_on_triton_reports_each_utilisation_with_the_clients_figures():
    lines = []
    out = md1_on_triton(rhos=(0.5, 0.8), n_base=60, log=lines.append)
    assert set(out) == {"0.5", "0.8"} and len(lines) == 2
    for rho, fig in out.items():
        assert 0 < fig["rho"] < 1   # offered from S measured one at a time, read back from Triton's S and the sent rate
        # the prediction is built on Triton's own S: above it, and the tail above the mean
        assert fig["predicted_mean_ms"] > fig["service_ms"] > 0 and fig["predicted_p99_ms"] > fig["predicted_mean_ms"]
        assert fig["client_cpus"] and fig["server_cpus"] and 0 < fig["client_cpu_share"] < 1
        assert fig["sent_per_s"] > 0 and fig["offered_per_s"] > 0 and isinstance(fig["valid"], bool)
    assert out["0.8"]["rho"] > out["0.5"]["rho"]


def test_a_stall_shows_in_every_request_scheduled_during_it():
    """Coordinated omission: the model stalls 1 s at request 60 of an open-loop run at 40/s; the requests scheduled
    in that second (about 40) must each carry it, and the p99 must move as the Lindley replay with the stall says."""
    check = stall_on_triton(rate=40.0, n=240, at=60, stall_ms=1000.0)
    print("\n", check)
    assert check["valid"] and check["errors"] == 0
    assert check["scheduled_during_stall"] >= 25 and check["every_request_shows_it"], check
    assert check["p99_moved"] and check["p99_ms"] > 500 and check["detected"], check
