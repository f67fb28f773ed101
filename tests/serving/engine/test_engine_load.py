"""One engine load point: which client runs first, whose figures the row carries, and how the two are compared.
The clients are replaced by recorders; the real AIPerf and own client against vLLM run in test_engine_e2e."""
from __future__ import annotations

import pytest

from workbench.serving.engine import load


def _side(name: str, ttft_p50: float, share: float, errors: int = 0) -> load.ClientRun:
    """What one client's side returns: its row columns and what the row is judged from."""
    cols = {"ttft_ms_p50": ttft_p50, "itl_ms_p99": 5.0}
    if name == "own":
        columns = {"own_ttft_ms_p50": ttft_p50, "own_within_slo": share,
                   "own_meets_slo": share >= 0.99 and not errors}
        alone = {**cols, "client": "own", "output_tokens_per_s": 40.0, "ttft_samples": 4, "itl_samples": 12}
        return load.ClientRun(columns, share, errors, 0.0, 8.0, 2.0, alone)
    columns = {**cols, "client": "aiperf", "requests_per_s": 2.0, "output_tokens_per_s": 50.0}
    return load.ClientRun(columns, share, errors, 0.0, 8.0, 2.0)


@pytest.fixture
def clients(monkeypatch):
    calls = []

    def aiperf_side(*a, **k):
        calls.append("aiperf")
        return _side("aiperf", 110.0, 1.0)

    def own_side(*a, **k):
        calls.append("own")
        return _side("own", 100.0, 0.75)   # the own client's run found the engine falling behind

    monkeypatch.setattr(load, "_aiperf_side", aiperf_side)
    monkeypatch.setattr(load, "_own_side", own_side)
    return calls


def _point(**kw):
    return load.measure_point(None, None, ["a", "b", "c", "d"], [8, 8, 8, 8], [0.0, 0.5, 1.0, 1.5], 4, 1000.0, 50.0,
                              0.99, {1}, None, **kw)


def test_the_client_order_is_the_callers_and_the_row_is_aiperfs(clients):
    row = _point(aiperf_first=False)
    assert clients == ["own", "aiperf"] and row["client_order"] == "own,aiperf"
    # AIPerf's run judges the row; the own client's run is judged beside it, not in its place
    assert row["ttft_ms_p50"] == 110.0 and row["meets_slo"] and row["slo_attainment"] == 1.0
    assert row["own_meets_slo"] is False and row["own_within_slo"] == 0.75
    assert row["aiperf_vs_own_ttft_p50_diff_pct"] == 10.0
    assert not any(k.startswith("_") for k in row)
    clients.clear()
    assert _point()["client_order"] == "aiperf,own" and clients == ["aiperf", "own"]


def test_the_own_client_alone_fills_the_row_and_is_judged(clients):
    row = _point(use_aiperf=False)
    assert clients == ["own"] and row["client"] == "own" and "client_order" not in row
    assert row["ttft_ms_p50"] == 100.0 and row["output_tokens_per_s"] == 40.0 and row["ttft_samples"] == 4
    assert row["slo_outcome"] == "miss" and row["slo_attainment"] == 0.75
    assert "aiperf_vs_own_ttft_p50_diff_pct" not in row
    with pytest.raises(ValueError, match="AIPerf, the own client, or both"):
        _point(use_aiperf=False, own_client=False)
