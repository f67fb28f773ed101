"""`workbench optimize --task causal-lm` end to end on the demo LM (small mode, a 2-arm subset): the same staged search
as the classifier, the LM's units in the decision, the vLLM engine bundle of the pick, and resume."""
import json

import pytest


def _provider(task_kind, isa, calibration, budget, device="cpu"):
    from workbench.arms.llm import llm_arms

    return llm_arms(["hf-generate-fp32", "hf-int4-wo"], compile=False), []


@pytest.mark.slow
def test_optimize_causal_lm_decides_bundles_for_the_engine_and_resumes(monkeypatch, tmp_path):
    import workbench as wb
    from workbench.optimize import candidates, kinds

    # shorter windows than small mode's own: this test checks the path and its units, not the figures
    for key, value in (("point_seconds", 0.3), ("screen_seconds", 0.2), ("eval_limit", 8), ("new", 12)):
        monkeypatch.setitem(kinds.LM_SMALL, key, value)
    monkeypatch.setenv("WORKBENCH_SMALL", "1")
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(candidates, "PROVIDERS", [("test", _provider)])
    events = []
    kw = dict(slo_ms=200.0, max_drop=2.0, budget_s=900, study="lm", load_check=True, progress=False)
    result = wb.optimize("causal-lm", on_event=events.append, **kw)
    d = result.decision
    assert d["complete"] and d["cost_unit"] == "USD per 1M output tokens" and d["drop_unit"] == "% ppl"
    assert [a["arm"] for a in d["arms"]][0] == d["pick"]["arm"]
    assert {a["arm"] for a in d["arms"]} == {"hf-generate-fp32", "hf-int4-wo"}
    for a in d["arms"]:
        assert a["why"], a
    pick = d["pick"]
    assert pick["quality"]["metric"] == "perplexity" and pick["quality"]["split"] == "test"
    assert pick["usd_per_1m"]["c7i.large"] > 0 and pick["tail_ms"] <= 200.0
    # every quality row: a perplexity increase in %, its CI around it, and eligibility by the one rule
    q = {r["arm"]: r for r in result.rows if r.get("stage") == "quality"}
    for name, row in q.items():
        if name != "hf-generate-fp32":
            assert row["drop_pts"] == row["ppl_increase_pct"]
            assert row["drop_ci_pts"][0] <= row["drop_pts"] <= row["drop_ci_pts"][1]
    # the screen times whole requests at the middle of the grid (batch 2 of 1, 2, 4), not the context's batch 1
    screen = [r for r in result.rows if r.get("stage") == "screen"]
    assert {r["batch_size"] for r in screen} == {kinds.LM_SMALL["grid"][1]} == {2}
    sweep = [r for r in result.rows if r.get("stage") == "sweep"]
    assert sweep and all(r["throughput_unit"] == "output tokens/s" for r in sweep)
    assert all(r["slo_latency"] == "itl" for r in sweep if r["rung"] == 0)     # the points (not the side-by-side run)
    # the engine bundle: the pick's weights in the spec the checkpoint carries, the load check skipped with a reason
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["kind"] == "engine" and manifest["optimize"]["arm"] == pick["arm"]
    assert any(n.startswith("vLLM engine bundle of") for n in d["notes"])
    assert any(n.startswith("load check skipped:") for n in d["notes"]) and pick["load_check"] is None
    assert {e["stage"] for e in events if e["type"] == "stage"} >= {"screen", "quality", "sweep", "confirm"}
    # the same command again measures nothing new
    again = wb.optimize("causal-lm", bundle=False, **kw)
    assert len(again.rows) == len(result.rows) and again.decision["pick"]["arm"] == pick["arm"]
