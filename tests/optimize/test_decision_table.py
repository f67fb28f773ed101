from workbench.optimize.decision import decision_text


def _decision(**kw):
    d = {"schema": 1, "task": "text-classification", "model": "demo", "device": "cpu", "cpu": "AMD EPYC",
         "slo": {"ms": 50.0, "percentile": "p99"}, "max_drop": 1.0, "budget_s": 600.0, "elapsed_s": 200.0,
         "complete": True, "cost_unit": "USD per 1M requests",
         "pick": {"arm": "ov-int8-static", "batch_size": 8, "confirmed_speedup": 2.6, "selection_speedup": 2.5,
                  "tail_ms": 31.0, "throughput_per_s": 410.0, "percentile_used": "p99",
                  "quality": {"metric": "accuracy", "split": "test", "value": 0.91, "drop": 0.4, "ci": [-0.2, 0.9]},
                  "usd_per_1m": {"c7i.large": 0.0605}, "lineage": ["torch-fp32"], "bundle": None,
                  "load_check": None},
         "pareto": [], "arms": [
             {"arm": "ov-int8-static", "outcome": "picked", "stage": "confirm", "why": "picked: cheapest",
              "speedup": 2.5, "drop": 0.4, "drop_ci": [-0.2, 0.9], "usd_per_1m": {"c7i.large": 0.0605}},
             {"arm": "torch-int8-dynamic", "outcome": "lost", "stage": "quality",
              "why": "quality drop CI [0.80, 2.30] pts above the 1 limit", "speedup": 1.9, "drop": 1.5,
              "drop_ci": [0.8, 2.3], "usd_per_1m": None}],
         "build_vs_buy": [{"instance": "c7i.large", "api": "openai/gpt-4o-mini", "usd_per_1m_self": 0.0605,
                           "usd_per_1m_api": 4.5, "break_even_per_day": 1.2e4, "traffic_per_day": 5e6,
                           "verdict": "build"}],
         "skipped_for_budget": ["distilled student (needs ~300 s, 120 s left)"], "resume": "workbench optimize x"}
    d.update(kw)
    return d


def test_table_has_the_pick_each_loser_with_why_and_the_budget_skips():
    text = decision_text(_decision())
    lines = text.splitlines()
    assert lines[1].startswith("PICK ov-int8-static at batch 8: 2.60x confirmed")
    assert "$0.0605 per 1M" in lines[1] and "drop 0.40 [-0.20, 0.90] on test" in lines[1]
    loser = next(x for x in lines if "torch-int8-dynamic" in x)
    assert "lost" in loser and "quality drop CI [0.80, 2.30] pts above the 1 limit" in loser and " - " in loser
    assert "break-even 1.2e+04/day; at 5e+06/day: build" in text
    assert "skipped for budget: distilled student" in text and "resume with" not in text


def test_a_load_check_too_short_for_its_percentile_says_so_rather_than_none():
    base = _decision()
    for tail, expected in ((42.0, "p99 latency 42.0 ms: SLO met"),
                           (None, "p99 latency absent (too few requests for it): SLO met")):
        pick = {**base["pick"], "load_check": {"rate_per_s": 4.8, "tail_ms": tail, "percentile": "p99", "slo_met": True,
                                               "outcome": "pass", "errors": 0}}
        line = next(x for x in decision_text(_decision(pick=pick)).splitlines() if x.startswith("load check"))
        assert expected in line and "None" not in line


def test_incomplete_run_says_so_and_how_to_resume():
    text = decision_text(_decision(complete=False, pick=None))
    assert "[INCOMPLETE]" in text.splitlines()[0] and "PICK none" in text
    assert text.splitlines()[-1] == "resume with: workbench optimize x"


def test_no_pick_says_whether_the_budget_ran_out_or_no_arm_qualified():
    ran_out = decision_text(_decision(pick=None, skipped_for_budget=["quality of ov-int8-static (needs ~1 s, 0 s left)"]))
    assert "PICK none: the budget ran out before" in ran_out
    none_qualified = decision_text(_decision(pick=None, skipped_for_budget=[]))
    assert "PICK none: no arm met the SLO within the quality limit" in none_qualified


def _search_with_a_tested_pick(tmp_path, ci):
    from workbench.arms.base import Arm
    from workbench.optimize.budget import Budget
    from workbench.optimize.kinds import ClassifierKind
    from workbench.optimize.search import Entry, Search, Settings
    from workbench.optimize.store import Store

    arms = [Arm("torch-fp32", "baseline", None, baseline=True), Arm("fast", "int8", None)]
    s = Search(task=None, task_kind="text-classification", arms=arms, ctx=None, settings=Settings.for_mode(True),
               store=Store(tmp_path / str(ci), {"t": 1}), budget=Budget(600), slo_ms=50.0, percentile="p99",
               max_drop=1.0, instances=("c7i.large",), emit=lambda event: None, isa={}, kind=ClassifierKind())
    s.entries = {a.name: Entry(a.name) for a in arms}
    s.entries["fast"].slo = {"feasible": True, "batch_size": 8, "tail_ms": 5.0, "throughput_per_s": 100.0,
                             "percentile_used": "p99", "usd_per_1m": {"c7i.large": 0.1}}
    s.winner = "fast"
    s.store.save({"stage": "confirm", "arm": "fast", "rung": "test", "split": "test", "metric": "accuracy",
                  "quality": 0.8, "quality_n": 32, "drop_pts": 0.5, "drop_ci_pts": ci})
    return s


def test_a_pick_whose_test_split_ci_reaches_above_the_limit_is_flagged(tmp_path):
    from workbench.optimize.decision import _pick

    wide = _pick(_search_with_a_tested_pick(tmp_path, [-2.0, 3.0]), None, None)
    assert "drop CI [-2.00, 3.00] pts reaches above the 1 limit (n=32)" in wide["quality_note"]
    assert "note: on the test split the drop CI" in decision_text(_decision(pick={**_decision()["pick"],
                                                                                  **wide}))
    assert _pick(_search_with_a_tested_pick(tmp_path, [-0.5, 0.8]), None, None)["quality_note"] is None
