"""The exhaustive reference of benchmarks/optimize.py on two arms of the demo classifier (small mode): every batch size
of the grid swept per arm, quality paired with the baseline's, the best arm the cheapest eligible one at the SLO."""
import json

import pytest


@pytest.mark.slow
def test_every_arm_and_batch_size_is_swept_and_the_cheapest_eligible_arm_is_best(monkeypatch, tmp_path):
    from workbench.optimize.exhaustive import exhaustive
    from workbench.optimize.search import Settings

    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path))
    out = exhaustive("text-classification", 2000.0, "p50", 100.0, ("c7i.large",), only=["ort-int8-dynamic"])
    assert set(out["arms"]) == {"torch-fp32", "ort-int8-dynamic"}
    assert "torch-compile-fp32" in out["not_run"]                     # not asked for: listed, not dropped
    grid = Settings.for_mode(True).grid
    for name, arm in out["arms"].items():
        assert arm["points"] == len(grid) and arm["eligible"] is True    # a 100-point tolerance takes any drop
        assert arm["slo"]["feasible"] and arm["slo"]["batch_size"] in grid
        # every swept batch priced; the SLO batch's price is the reading's
        assert set(arm["usd_per_1m_by_batch"]) == set(grid)
        assert arm["usd_per_1m_by_batch"][arm["slo"]["batch_size"]] == arm["slo"]["usd_per_1m"]["c7i.large"]
    costs = {n: a["slo"]["usd_per_1m"]["c7i.large"] for n, a in out["arms"].items()}
    assert out["best"] == min(costs, key=costs.get) and out["best_usd_per_1m"] == costs[out["best"]]
    assert out["wall_s"] >= out["build_seconds"] > 0


@pytest.mark.slow
def test_the_causal_lm_reference_sweeps_whole_requests_of_each_batch(monkeypatch, tmp_path):
    from workbench.optimize import kinds
    from workbench.optimize.exhaustive import exhaustive

    for key, value in (("point_seconds", 0.2), ("eval_limit", 8), ("new", 8)):   # the path, not the figures
        monkeypatch.setitem(kinds.LM_SMALL, key, value)
    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path))
    out = exhaustive("causal-lm", 1000.0, "p99", 100.0, ("c7i.large",), only=[])
    (name, arm), = out["arms"].items()
    assert name == "hf-generate-fp32" and arm["points"] == len(kinds.LM_SMALL["grid"])
    assert arm["slo"]["feasible"] and out["best"] == name and out["best_usd_per_1m"] > 0



@pytest.mark.slow
def test_side_by_side_prices_each_arm_at_its_own_batch_from_one_run(monkeypatch, tmp_path):
    from workbench.optimize.exhaustive import side_by_side
    from workbench.optimize.search import HEAD_TO_HEAD

    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path))
    costs = side_by_side("text-classification", 2000.0, "p50", 100.0, ("c7i.large",),
                         {"torch-fp32": 8, "ort-int8-dynamic": 4}, study="sbs", rounds=2)
    assert set(costs) == {"torch-fp32", "ort-int8-dynamic"} and all(c > 0 for c in costs.values())
    rows = [json.loads(x) for x in (tmp_path / "sbs" / "results.jsonl").read_text().splitlines()]
    assert {(r["arm"], r["batch_size"], r["rung"]) for r in rows} == {("torch-fp32", 8, HEAD_TO_HEAD),
                                                                    ("ort-int8-dynamic", 4, HEAD_TO_HEAD)}
