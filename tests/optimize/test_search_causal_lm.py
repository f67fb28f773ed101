"""`workbench optimize --task causal-lm` end to end on the demo LM (small mode, a 2-arm subset): the same staged search
as the classifier, the LM's units in the decision, the vLLM engine bundle of the pick, and resume."""
import json

import pytest


def _provider(task_kind, isa, calibration, budget, device="cpu"):
    from workbench.arms.llm import llm_arms

    return llm_arms(["hf-generate-fp32", "hf-int4-wo"], compile=False), []


def _fake_engine(monkeypatch) -> dict:
    """vLLM stood in for: the engine 'starts' on the bundle's checkpoint, its idle request takes 1 s, and a point's
    requests see ITL p99 12 ms; what the load check sent is recorded."""
    import numpy as np

    import workbench.serving.engine.envs as envs
    import workbench.serving.engine.openai_client as client
    import workbench.serving.engine.search as engine_search
    import workbench.serving.engine.server as server
    from workbench.serving.engine.openai_client import OwnClientResult

    seen = {}

    class FakeServer:
        def __init__(self, checkpoint, args, log_path, cpus=None, **kw):
            seen["checkpoint"], self.url, self.startup_s = checkpoint, "http://127.0.0.1:1", 1.0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

        def check_alive(self):
            return None

    def fake_schedule(url, prompts, offsets, max_tokens, **kw):
        seen.update(n_prompts=len(prompts), max_tokens=max_tokens, rate=(len(offsets) - 1) / float(np.max(offsets)))
        return OwnClientResult({"itl_ms_p50": 5.0, "itl_ms_p99": 12.0, "ttft_ms_p50": 30.0}, len(prompts),
                               len(prompts), 0, 1.0, 0.2, 2.0)

    monkeypatch.setattr(envs, "available", lambda: (True, ""))
    monkeypatch.setattr(server, "VllmServer", FakeServer)
    monkeypatch.setattr(client, "run_schedule", fake_schedule)
    monkeypatch.setattr(engine_search, "idle_latency",
                        lambda *a, **k: {"ttft_ms_p50": 30.0, "itl_ms_p50": 5.0, "e2e_s_p50": 1.0})
    return seen


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
    served = _fake_engine(monkeypatch)
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
    # the screen times whole requests at the top of the grid (batch 4 of 1, 2, 4), not the context's batch 1
    screen = [r for r in result.rows if r.get("stage") == "screen"]
    assert {r["batch_size"] for r in screen} == {kinds.LM_SMALL["grid"][-1]} == {4}
    sweep = [r for r in result.rows if r.get("stage") == "sweep"]
    assert sweep and all(r["throughput_unit"] == "output tokens/s" for r in sweep)
    assert all(r["slo_latency"] == "itl" for r in sweep if r["rung"] == 0)     # the points (not the side-by-side run)
    # the engine bundle: the pick's weights in the spec the checkpoint carries, served by the engine for the load
    # check: one Poisson point at half the idle engine's capacity in the search's request shape, judged on its ITL SLO
    manifest = json.loads((result.bundle / "manifest.json").read_text())
    assert manifest["kind"] == "engine" and manifest["optimize"]["arm"] == pick["arm"]
    assert any(n.startswith("vLLM engine bundle of") for n in d["notes"])
    assert served["checkpoint"] == result.bundle / "checkpoint" and served["max_tokens"] == kinds.LM_SMALL["new"]
    assert served["n_prompts"] == 40 and served["rate"] == pytest.approx(0.5, rel=0.35)   # 0.5 / 1 s idle request
    check = pick["load_check"]
    assert check["slo_met"] is True and check["tail_ms"] == 12.0 and check["latency"] == "ITL per output token"
    assert "p99 ITL per output token 12.0 ms: SLO met, 0 errors" in wb.optimize.decision_text(d)
    load_rows = [r for r in result.rows if r.get("stage") == "load"]
    assert len(load_rows) == 1 and load_rows[0]["scenario"] == "optimize-load" and load_rows[0]["itl_ms_p99"] == 12.0
    assert {e["stage"] for e in events if e["type"] == "stage"} >= {"screen", "quality", "sweep", "confirm"}
    # the same command again measures nothing new
    again = wb.optimize("causal-lm", bundle=False, **kw)
    assert len(again.rows) == len(result.rows) and again.decision["pick"]["arm"] == pick["arm"]
