"""The benchmark's comparison of optimize with the exhaustive reference: its figures from the two sides' results, the
sides' command line, and the kill-and-resume count (against a stand-in child that saves rows as optimize does)."""
import json
import textwrap

import pytest

from workbench.optimize import versus_exhaustive as vs


def _sides(pick, pick_batch, best, ex_costs, side_costs=None, by_batch=None):
    """fresh_side stand-in: optimize picked ``pick`` at $1.00; the exhaustive run priced every arm (``ex_costs``,
    read at batch 8; ``by_batch``: every arm's cost at each batch of its sweep, keys as JSON gives them back)."""
    calls = []

    def fresh_side(side, setup, pair=None):
        calls.append((side, pair))
        if side == "optimize":
            return {"wall_s": 30.0, "decision": {"pick": {"arm": pick, "batch_size": pick_batch, "usd_per_1m":
                                                          {"c7i.large": 1.0}}, "build_s": 10.0,
                                                 "cost_unit": "USD per 1M requests"}}
        if side == "exhaustive":
            arms = {n: {"slo": {"batch_size": 8, "usd_per_1m": {"c7i.large": c}},
                        "usd_per_1m_by_batch": by_batch or {"8": c}} for n, c in ex_costs.items()}
            return {"wall_s": 100.0, "build_seconds": 10.0, "arms": arms, "best": best,
                    "best_usd_per_1m": ex_costs[best]}
        return side_costs
    return fresh_side, calls


def test_figures_come_from_the_two_sides_and_a_side_by_side_run_when_the_picks_differ(monkeypatch):
    fresh, calls = _sides("a", 16, "b", {"a": 1.1, "b": 0.8}, side_costs={"a": 0.9, "b": 1.0})
    monkeypatch.setattr(vs, "fresh_side", fresh)
    out = vs.compare(vs.Setup(), resume=False)
    assert out["regret_pct"] == -10.0                     # side by side the pick was the cheaper one
    assert out["regret_across_runs_pct"] == 25.0          # $1.00 confirmed vs the exhaustive best's $0.80
    assert out["choice_regret_pct"] == 37.5               # the pick's own exhaustive cost ($1.10) vs $0.80
    assert calls[-1] == ("side-by-side", {"a": 16, "b": 8})
    assert out["time_fraction"] == 0.3 and out["time_fraction_excluding_builds"] == 0.222
    assert out["resume"] is None and out["resumed_rows_remeasured"] is None


def test_the_same_pick_needs_no_side_by_side_run(monkeypatch):
    fresh, calls = _sides("b", 8, "b", {"b": 0.8})
    monkeypatch.setattr(vs, "fresh_side", fresh)
    out = vs.compare(vs.Setup(), resume=False)
    assert out["regret_pct"] == 0.0 and [c[0] for c in calls] == ["optimize", "exhaustive"]
    assert out["regret_across_runs_pct"] == 25.0          # the drift between the two runs, not a regret


def test_the_same_arm_at_another_batch_is_priced_on_the_exhaustive_sweep(monkeypatch):
    fresh, calls = _sides("b", 4, "b", {"b": 0.8}, by_batch={"4": 1.0, "8": 0.8})
    monkeypatch.setattr(vs, "fresh_side", fresh)
    out = vs.compare(vs.Setup(), resume=False)
    assert out["regret_pct"] == 25.0 and [c[0] for c in calls] == ["optimize", "exhaustive"]


def test_a_child_side_reads_back_the_setup_it_was_given(monkeypatch, capsys):
    setup = vs.Setup("causal-lm", 40.0, "p50", 2.0, 300.0, "c7i.large,g6.xlarge")
    seen = {}
    monkeypatch.setattr(vs, "run_side", lambda side, s, pair: seen.update(side=side, setup=s, pair=pair) or {"ok": 1})
    vs._main(["--side", "side-by-side", *setup.argv(), "--pair", json.dumps({"a": 2})])
    assert seen == {"side": "side-by-side", "setup": setup, "pair": {"a": 2}}
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"ok": 1}


# A stand-in for optimize's child: saves rows one by one as optimize does (a resumed run skips the rows it has),
# writes decision.json with complete false on Ctrl-C and true at the end.
_CHILD = textwrap.dedent("""
    import json, pathlib, signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)
    folder = pathlib.Path({folder!r}); folder.mkdir(parents=True, exist_ok=True)
    path, redo = folder / "results.jsonl", {redo}
    if redo and path.exists():
        path.unlink()
    have = {{json.loads(x)["arm"] for x in path.read_text().splitlines()}} if path.exists() else set()
    try:
        for i in range(12):
            if f"arm{{i}}" in have and not (i == 0 and {forgets_first}):
                continue
            with path.open("a") as f:
                f.write(json.dumps({{"scenario": "optimize-screen", "stage": "screen", "arm": f"arm{{i}}"}}) + "\\n")
            time.sleep(0.2)   # the stand-in's "measurement": a row every 0.2 s, so the poller sees rows arrive
    except KeyboardInterrupt:
        (folder / "decision.json").write_text(json.dumps({{"complete": False}}))
        raise
    (folder / "decision.json").write_text(json.dumps({{"complete": True, "pick": {{"arm": "arm0"}}}}))
""")


@pytest.mark.parametrize("forgets_first", [False, True])
def test_resume_check_interrupts_the_run_and_counts_rows_measured_twice(monkeypatch, tmp_path, forgets_first):
    monkeypatch.setenv("WORKBENCH_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr(vs, "_optimize_code", lambda setup, study, redo: _CHILD.format(
        folder=str(tmp_path / study), redo=redo, forgets_first=forgets_first))
    out = vs.resume_check(vs.Setup(), kill_after_rows=4, study="resume")
    assert out["interrupted"] is True and out["interrupted_exit_code"] != 0
    assert out["complete_after_interrupt"] is False and 4 <= out["rows_before_interrupt"] < 12
    # a resumed run that measures a saved row again is caught
    assert out["resumed_rows_remeasured"] == (1 if forgets_first else 0)
    assert out["rows_after_resume"] == 12 + forgets_first
    assert out["resume_exit_code"] == 0 and out["resumed_complete"] is True and out["resumed_pick"] == "arm0"
