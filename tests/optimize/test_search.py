"""End to end on the demo classifier (small mode) with a reduced candidate list: the baseline, a real int8 arm, an
arm that fails to build and an arm doing twice the baseline's work. No Triton, no bundle: fast enough for CI."""
import json
from types import SimpleNamespace

import pytest



def _run(**kw):
    from workbench.optimize import optimize

    args = dict(slo_ms=2000.0, percentile="p50", max_drop=100.0, budget_s=900, study="opt", bundle=False,
                progress=False)
    return optimize("text-classification", **{**args, **kw})


@pytest.mark.slow
def test_decision_resume_and_redo(small):
    events = []
    result = _run(on_event=events.append)
    d = result.decision
    saved = json.loads((small / "opt" / "decision.json").read_text())
    assert saved["complete"] is True and saved["pick"] == d["pick"]
    arms = {a["arm"]: a for a in d["arms"]}
    assert set(arms) == {"torch-fp32", "ort-int8-dynamic", "broken-arm", "double-work"}
    assert arms["broken-arm"]["outcome"] == "failed" and "no kernel for this op here" in arms["broken-arm"]["why"]
    assert arms["double-work"]["outcome"] == "lost" and arms["double-work"]["stage"] == "screen"
    assert "slower than torch-fp32" in arms["double-work"]["why"] and arms["double-work"]["speedup"] < 0.9
    pick = d["pick"]
    assert pick["arm"] in ("torch-fp32", "ort-int8-dynamic") and arms[pick["arm"]]["outcome"] == "picked"
    assert pick["usd_per_1m"]["c7i.large"] > 0 and pick["throughput_per_s"] > 0
    assert pick["quality"]["split"] == "test"
    loser = [a for a in d["arms"] if a["arm"] in ("torch-fp32", "ort-int8-dynamic") and a["arm"] != pick["arm"]][0]
    assert loser["outcome"] == "lost" and loser["why"]
    assert d["build_vs_buy"] and d["build_vs_buy"][0]["usd_per_1m_api"] > 0
    assert [e["stage"] for e in events if e["type"] == "stage"][:4] == ["screen", "quality", "sweep", "confirm"]
    assert events[-1]["type"] == "done"
    rows = [json.loads(x) for x in (small / "opt" / "results.jsonl").read_text().splitlines()]
    assert {r["scenario"] for r in rows} <= {"optimize-screen", "optimize-quality", "optimize-sweep",
                                             "optimize-confirm"}
    # the same command again: nothing is measured twice, the decision is the same
    again = _run()
    assert len((small / "opt" / "results.jsonl").read_text().splitlines()) == len(rows)
    assert again.decision["pick"]["arm"] == pick["arm"]
    # other settings on the same study are refused; --redo starts over
    with pytest.raises(ValueError, match="other settings"):
        _run(slo_ms=1000.0)
    _run(redo=True, slo_ms=1000.0)
    assert list((small / "opt").glob("results.jsonl.*.bak"))


@pytest.mark.slow
def test_interrupt_keeps_rows_and_resume_measures_only_the_rest(small):
    seen = []

    def stop_after_three(event):
        if event["type"] == "row":
            seen.append(event["row"])
            if len(seen) == 3:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(on_event=stop_after_three)
    d = json.loads((small / "opt" / "decision.json").read_text())
    assert d["complete"] is False and d["resume"].startswith("workbench optimize --task text-classification")
    _run()
    rows = [json.loads(x) for x in (small / "opt" / "results.jsonl").read_text().splitlines()]
    keys = [(r["stage"], r["arm"], r.get("batch_size"), r.get("rung")) for r in rows]
    assert len(keys) == len(set(keys)) and len(rows) > 3


def test_budget_too_small_for_the_baseline_says_how_much(small):
    from workbench.optimize.budget import BudgetError

    with pytest.raises(BudgetError, match=r"needs ~\d+ s.*--budget \d+s"):
        _run(budget_s=3)


class _FakeKind:
    """Sweep points without a model: latency grows with the batch; "batch-one-only" cannot run a batch above 1 (as
    llama.cpp's Llama, one sequence per context)."""

    calls = []
    throughput_unit = "requests/s"

    def point(self, s, name, batch):
        self.calls.append((name, batch))
        if name == "batch-one-only" and batch > 1:
            raise ValueError("decodes one sequence per context: batch 1 only")
        ms = {"torch-fp32": 4.0, "fast": 1.0, "batch-one-only": 2.0}[name] * (1 + batch) / 2   # batching pays
        return {"scenario": "batching", "batch_size": batch, "seq_len": 8, "variant_id": name, "n_calls": 500,
                "stable": True, "latency_p50_ms": ms, "latency_p99_ms": ms, "throughput_per_s": batch * 1000 / ms}

    @staticmethod
    def cost(usd_per_hour, throughput):
        return usd_per_hour / (throughput * 3600) * 1e6

    def at_batch(self, s, name, batch):
        """The side-by-side run's call: real work in proportion to the point's latency model above."""
        from workbench.arms.base import BuiltArm

        self.calls.append((name, batch, "side by side"))
        work = int({"torch-fp32": 4.0, "fast": 1.0, "batch-one-only": 2.0}[name] * (1 + batch) / 2 * 20_000)
        return BuiltArm(call=lambda: sum(range(work)))

    @staticmethod
    def units_per_call(batch):
        return batch

    calls_per_turn = 3


def test_sweep_walks_down_from_the_top_and_a_batch_an_arm_cannot_run_is_a_failed_point(tmp_path):
    from workbench.arms.base import Arm
    from workbench.optimize.budget import Budget
    from workbench.optimize.search import Entry, Search, Settings, sweep
    from workbench.optimize.store import Store

    arms = [Arm("torch-fp32", "baseline", None, baseline=True), Arm("fast", "int8", None),
            Arm("batch-one-only", "llama.cpp", None)]
    settings = Settings(1, 8, 1, 0.1, 8, (1, 2, 4, 8), 0.1, 8, 1)

    def search():
        s = Search(task=None, task_kind="text-classification", arms=arms, ctx=SimpleNamespace(threads=None),
                   settings=settings, store=Store(tmp_path, {"t": 1}), budget=Budget(600), slo_ms=1000.0,
                   percentile="p99", max_drop=1.0, instances=("c7i.large",), emit=lambda event: None, isa={}, kind=_FakeKind())
        s.entries = {a.name: Entry(a.name) for a in arms}
        s.built = {a.name: object() for a in arms}     # built already: the sweep only times
        return s

    _FakeKind.calls.clear()
    s = search()
    sweep(s)
    failed = [r for r in s.store.rows("sweep") if r.get("failed")]
    # walked from the top of the grid down: 8, 4 and 2 fail for the batch-1 arm, 1 runs and meets the SLO
    assert [(r["arm"], r["batch_size"], r["failure"]) for r in failed] == [
        ("batch-one-only", 8, "error"), ("batch-one-only", 4, "error"), ("batch-one-only", 2, "error")]
    assert "batch 1 only" in failed[0]["reason"]
    assert s.entries["batch-one-only"].slo["batch_size"] == 1  # its reading is the batch it can run
    # the others meet the SLO at the top: one point each, the points below would not change the reading
    assert [c[1] for c in _FakeKind.calls if c[0] == "fast" and len(c) == 2] == [8]
    assert s.entries["fast"].slo["batch_size"] == 8
    # the three meet the SLO: they are timed side by side, each at its SLO batch, and the cheapest there wins
    side = {r["arm"]: r for r in s.store.rows("sweep") if r.get("rung") == "head-to-head"}
    assert {(n, r["batch_size"]) for n, r in side.items()} == {("fast", 8), ("batch-one-only", 1), ("torch-fp32", 8)}
    # 8 items per 4.5 units against batch-one-only's 1 per 2: x3.6 apart per item, an order that real work timed side by
    # side keeps with another test running beside it (x1.4 apart did not)
    assert s.winner == "fast" == min(side, key=lambda n: side[n]["usd_per_1m"]["c7i.large"])
    assert "side by side" in s.entries["torch-fp32"].why
    # resumed: the failed point is read back, not retried
    _FakeKind.calls.clear()
    again = search()
    sweep(again)
    assert _FakeKind.calls == [] and again.winner == "fast"


def _busy(work: int, counter: list):
    def call():
        counter.append(1)
        return sum(range(work))     # real work: the arm's speed is the size of its loop
    return call


def _screen_search(tmp_path, arms, work: dict, calls: list, ctx=None):
    """A classifier search over ``arms`` whose arms in ``work`` are built already (busy loops of that size): the
    screen only times them."""
    from workbench.arms.base import BuiltArm
    from workbench.optimize import search as srch
    from workbench.optimize.budget import Budget
    from workbench.optimize.kinds import ClassifierKind
    from workbench.optimize.store import Store

    s = srch.Search(task=None, task_kind="text-classification", arms=arms, ctx=ctx or SimpleNamespace(threads=None),
                    settings=srch.Settings(8, 8, 3, 0.05, 8, (1, 8), 0.1, 8, 1), store=Store(tmp_path, {"t": 1}),
                    budget=Budget(600), slo_ms=1000.0, percentile="p99", max_drop=1.0, instances=("c7i.large",),
                    emit=lambda event: None, isa={}, kind=ClassifierKind())
    s.built = {n: BuiltArm(call=_busy(w, calls)) for n, w in work.items()}
    return s


def test_the_screen_halves_one_round_for_every_arm_the_rest_for_the_fastest(tmp_path):
    from workbench.arms.base import Arm
    from workbench.optimize import search as srch

    work = {"torch-fp32": 40_000, **{f"fast-{i}": 8_000 + 1_000 * i for i in range(6)},
            "slow-a": 80_000, "slow-b": 120_000, "slow-c": 160_000}
    arms = [Arm(n, "baseline" if n == "torch-fp32" else "int8", None, baseline=n == "torch-fp32") for n in work]
    calls = []

    def search():
        return _screen_search(tmp_path, arms, work, calls)

    assert len(work) - 1 > srch.SCREEN_KEEP   # more arms than the full screen keeps: it halves
    s = search()
    srch.screen(s)
    first = {r["arm"]: r for r in s.store.rows("screen") if r.get("rung") == srch.FIRST_ROUND}
    final = {r["arm"]: r for r in s.store.rows("screen") if r.get("rung") is None}
    assert set(first) == set(final) == set(work) and {r["rounds"] for r in first.values()} == {1}
    cut = {n for n, r in final.items() if r.get("screen_cut")}
    assert cut == {"slow-a", "slow-b", "slow-c"}      # below the SCREEN_KEEP fastest of the first round
    for name in cut:   # figures of the first round, said so, and not a second measurement of the point
        assert final[name]["measured_in"] == srch.FIRST_ROUND and "variant_id" not in final[name]
        assert s.entries[name].outcome == "lost" and "first round" in s.entries[name].why
    assert {final[n]["rounds"] for n in set(work) - cut} == {s.settings.screen_rounds - 1}
    assert all(s.entries[n].outcome == "running" for n in work if n.startswith("fast"))
    # resumed: every screen row is read back, nothing is timed again, the same arms are cut
    calls.clear()
    again = search()
    srch.screen(again)
    assert calls == [] and {n for n, e in again.entries.items() if e.outcome == "lost"} == cut


def test_a_compile_arm_whose_eager_twin_cannot_reach_the_contenders_is_not_built(tmp_path):
    from workbench.arms.base import Arm
    from workbench.optimize import search as srch

    work = {"torch-fp32": 40_000, **{f"fast-{i}": 8_000 + 1_000 * i for i in range(6)}, "compiled-fast": 6_000}
    twins = {"compiled-fp32": "torch-fp32", "compiled-fast": "fast-0"}
    built_here = []

    def never(ctx):
        built_here.append("compiled-fp32")
        raise AssertionError("compiled-fp32 was built")

    arms = [Arm(n, "baseline" if n == "torch-fp32" else "int8", None, baseline=n == "torch-fp32") for n in work
            if n not in twins]
    arms += [Arm("compiled-fp32", "compile", never, twin="torch-fp32"),
             Arm("compiled-fast", "compile", None, twin="fast-0")]
    calls = []

    def search():
        return _screen_search(tmp_path, arms, work, calls)     # compiled-fp32 is not in work: never built

    s = search()
    srch.screen(s)
    # 1.0x (its twin, the baseline) x COMPILE_GAIN_BOUND stays below the third fastest arm that compiles nothing
    e = s.entries["compiled-fp32"]
    assert built_here == [] and e.outcome == "lost" and e.behind_faster and e.why.startswith("not built")
    assert "torch-fp32" in e.why and f"{srch.COMPILE_GAIN_BOUND:g}x" in e.why
    row = s.store.get("screen", "compiled-fp32", 8)
    assert row["status"] == "skipped" and row["screen_cut"] == e.why
    # the twin of the other one is fast: that one is built and screened after its twin's first round
    assert s.store.get("screen", "compiled-fast", 8, srch.FIRST_ROUND)["speedup"] > 1
    assert s.entries["compiled-fast"].outcome == "running"
    # resumed: the same arm is left out, nothing is timed again
    calls.clear()
    again = search()
    srch.screen(again)
    assert calls == [] and built_here == [] and again.entries["compiled-fp32"].why == e.why


def test_arms_the_screen_cut_get_their_quality_pass_when_the_faster_ones_fail_it(tmp_path):
    from workbench.arms.base import Arm, BuiltArm
    from workbench.optimize import search as srch
    from workbench.optimize.budget import Budget
    from workbench.optimize.kinds import ClassifierKind
    from workbench.optimize.store import Store
    from workbench.tasks.base import QualityResult

    # six fast arms that all fail a 1-point limit (like LM students on a tight perplexity limit), three slower ones
    # that the first round cuts but that keep the baseline's answers
    work = {"torch-fp32": 40_000, **{f"lossy-{i}": 8_000 + 1_000 * i for i in range(6)},
            "exact-a": 20_000, "exact-b": 24_000, "exact-c": 36_000}
    right = [1.0] * 40

    def quality_of(name):
        per = right if not name.startswith("lossy") else [0.0] * 20 + right[20:]
        return lambda: QualityResult("accuracy", sum(per) / len(per), 0.0, 1.0, len(per), per_example=tuple(per))

    arms = [Arm(n, "baseline" if n == "torch-fp32" else "int8", None, baseline=n == "torch-fp32") for n in work]
    calls = []
    s = srch.Search(task=None, task_kind="text-classification", arms=arms,
                    ctx=SimpleNamespace(threads=None, options={}),
                    settings=srch.Settings(8, 8, 3, 0.05, 8, (1, 8), 0.1, 8, 1), store=Store(tmp_path, {"t": 1}),
                    budget=Budget(600), slo_ms=1000.0, percentile="p99", max_drop=1.0, instances=("c7i.large",),
                    emit=lambda event: None, isa={}, kind=ClassifierKind())
    s.built = {n: BuiltArm(call=_busy(w, calls), quality=quality_of(n)) for n, w in work.items()}
    srch.screen(s)
    cut = {n for n, e in s.entries.items() if e.outcome == "lost"}
    assert cut and cut <= {"exact-a", "exact-b", "exact-c"} and all(s.entries[n].behind_faster for n in cut)
    srch.quality(s)
    lossy = [n for n in work if n.startswith("lossy")]
    assert all(s.entries[n].outcome == "lost" and s.entries[n].stage == "quality" for n in lossy)
    running = [n for n, e in s.entries.items() if e.outcome == "running"]
    # the baseline and two exact arms go on to the sweep: before, the baseline alone did (a 1.0x pick)
    assert len(running) == srch.CONTENDERS and "torch-fp32" in running
    revived = set(running) & cut
    assert revived and all("taken up again" in s.entries[n].why for n in revived)


class _TwinKind(_FakeKind):
    """Two arms at the same cost (their side-by-side calls time themselves: a fixed pattern, no machine noise), one
    with a clearly smaller quality drop; a third clearly costlier."""

    ms = {"torch-fp32": 4.0, "twin-lossy": 1.0, "twin-exact": 1.0}
    wobble = {"torch-fp32": [0.0] * 6, "twin-lossy": [0.0, 0.1, -0.1, 0.05, 0.0, -0.05],
              "twin-exact": [0.05, -0.05, 0.1, 0.0, -0.1, 0.05]}

    def point(self, s, name, batch):
        ms = self.ms[name] * batch
        return {"scenario": "batching", "batch_size": batch, "seq_len": 8, "variant_id": name, "n_calls": 500,
                "stable": True, "latency_p50_ms": ms, "latency_p99_ms": ms, "throughput_per_s": batch * 1000 / ms}

    def at_batch(self, s, name, batch):
        from workbench.arms.base import BuiltArm
        from workbench.measure.interleaved import Timed

        turn = iter(range(10**6))
        return BuiltArm(call=lambda: Timed(self.ms[name] * batch * (1 + self.wobble[name][next(turn) % 6])))


def test_contenders_tied_on_cost_go_to_the_clearly_better_quality(tmp_path):
    from workbench.arms.base import Arm
    from workbench.optimize.budget import Budget
    from workbench.optimize.search import Entry, Search, Settings, sweep
    from workbench.optimize.store import Store

    arms = [Arm("torch-fp32", "baseline", None, baseline=True), Arm("twin-lossy", "int4", None),
            Arm("twin-exact", "int8", None)]
    s = Search(task=None, task_kind="text-classification", arms=arms, ctx=SimpleNamespace(threads=None),
               settings=Settings(1, 8, 3, 0.05, 8, (1, 2), 0.1, 8, 1), store=Store(tmp_path, {"t": 1}),
               budget=Budget(600), slo_ms=1000.0, percentile="p99", max_drop=1.0, instances=("c7i.large",),
               emit=lambda event: None, isa={}, kind=_TwinKind())
    s.entries = {a.name: Entry(a.name) for a in arms}
    s.entries["torch-fp32"].drop_ci = [0.0, 0.0]
    s.entries["twin-lossy"].drop_ci, s.entries["twin-exact"].drop_ci = [0.3, 0.45], [-0.03, 0.06]
    s.built = {a.name: object() for a in arms}
    sweep(s)
    side = {r["arm"]: r for r in s.store.rows("sweep") if r.get("rung") == "head-to-head"}
    # the lossy twin reads cheaper (median 1.0 vs 1.025 of its pattern), but within the run's noise: a tie, broken
    # for the exact one
    assert side["twin-exact"]["cheapest_side_by_side"] == "twin-lossy" and s.winner == "twin-exact"
    assert side["twin-exact"]["cost_vs_cheapest"][1] <= 1.0 <= side["twin-exact"]["cost_vs_cheapest"][2]
    assert "tied on cost with twin-lossy" in s.entries["twin-exact"].why
    assert "lost on quality" in s.entries["twin-lossy"].why
    assert side["torch-fp32"]["cost_vs_cheapest"][1] > 3.5        # 4x costlier: never tied
    assert "costlier than twin-exact" in s.entries["torch-fp32"].why


class _LuckyKind(_TwinKind):
    """Two close arms: "lucky" reads cheapest in the side-by-side run (its pattern is twin-lossy's), within that
    run's noise of "steady", and 30% costlier whenever it is timed again: a short run's luck, not its cost."""

    ms = {"torch-fp32": 4.0, "lucky": 1.0, "steady": 1.0}
    wobble = {"torch-fp32": [0.0] * 6, "lucky": _TwinKind.wobble["twin-lossy"],
              "steady": _TwinKind.wobble["twin-exact"]}

    def __init__(self):
        self.runs = {}

    def at_batch(self, s, name, batch):
        from workbench.arms.base import BuiltArm
        from workbench.measure.interleaved import Timed

        self.runs[name] = self.runs.get(name, 0) + 1
        if name == "lucky" and self.runs[name] > 1:
            return BuiltArm(call=lambda: Timed(1.3 * batch))
        return super().at_batch(s, name, batch)


def test_a_tie_on_cost_is_timed_again_longer_before_quality_breaks_it(tmp_path):
    from workbench.arms.base import Arm
    from workbench.optimize import search as srch
    from workbench.optimize.budget import Budget
    from workbench.optimize.store import Store

    arms = [Arm("torch-fp32", "baseline", None, baseline=True), Arm("lucky", "int4", None),
            Arm("steady", "int8", None)]
    kind = _LuckyKind()
    s = srch.Search(task=None, task_kind="text-classification", arms=arms, ctx=SimpleNamespace(threads=None),
                    settings=srch.Settings(1, 8, 3, 0.05, 8, (1, 2), 0.1, 8, 1), store=Store(tmp_path, {"t": 1}),
                    budget=Budget(600), slo_ms=1000.0, percentile="p99", max_drop=1.0, instances=("c7i.large",),
                    emit=lambda event: None, isa={}, kind=kind)
    s.entries = {a.name: srch.Entry(a.name) for a in arms}
    # lucky has the smaller drop: quality alone would keep it, so only the longer run can hand the pick to steady
    s.entries["torch-fp32"].drop_ci, s.entries["lucky"].drop_ci = [0.0, 0.0], [0.0, 0.1]
    s.entries["steady"].drop_ci = [0.2, 0.3]
    s.built = {a.name: object() for a in arms}
    srch.sweep(s)
    rows = s.store.rows("sweep")
    first = {r["arm"]: r for r in rows if r.get("rung") == srch.HEAD_TO_HEAD}
    again = {r["arm"]: r for r in rows if r.get("rung") == srch.HEAD_TO_HEAD_TIE}
    assert first["steady"]["cheapest_side_by_side"] == "lucky" and first["steady"]["cost_vs_cheapest"][1] <= 1.0
    assert set(again) == {"lucky", "steady"} and kind.runs == {"torch-fp32": 1, "lucky": 2, "steady": 2}
    assert again["lucky"]["cheapest_side_by_side"] == "steady" and again["lucky"]["cost_vs_cheapest"][1] > 1.2
    assert s.winner == "steady" and "re-timed longer" in s.entries["steady"].why
    assert "costlier than steady" in s.entries["lucky"].why
    # a resumed run reads both runs back: nothing is timed a third time
    s.store = Store(tmp_path, {"t": 1})
    srch.sweep(s)
    assert kind.runs == {"torch-fp32": 1, "lucky": 2, "steady": 2} and s.winner == "steady"


def test_contenders_at_the_screen_batch_are_priced_off_the_screens_paired_rounds(tmp_path):
    from workbench.arms.base import Arm, BuiltArm
    from workbench.optimize import search as srch
    from workbench.optimize.budget import Budget
    from workbench.optimize.kinds import ClassifierKind
    from workbench.optimize.store import Store

    work = {"torch-fp32": 40_000, "fast": 8_000, "close": 9_000}
    arms = [Arm(n, "baseline" if n == "torch-fp32" else "int8", None, baseline=n == "torch-fp32") for n in work]
    calls = []
    s = srch.Search(task=None, task_kind="text-classification", arms=arms, ctx=SimpleNamespace(threads=None),
                    settings=srch.Settings(8, 8, 3, 0.05, 8, (1, 8), 0.1, 8, 1), store=Store(tmp_path, {"t": 1}),
                    budget=Budget(600), slo_ms=1000.0, percentile="p99", max_drop=1.0, instances=("c7i.large",),
                    emit=lambda event: None, isa={}, kind=ClassifierKind())
    s.built = {n: BuiltArm(call=_busy(w, calls)) for n, w in work.items()}
    srch.screen(s)   # three arms: no halving, one interleaved run of every round
    screen = {r["arm"]: r for r in s.store.rows("screen")}
    assert len({r["screen_run"] for r in screen.values()}) == 1 and len(screen["fast"]["round_ms"]) >= 3
    calls.clear()
    side = srch._side_by_side_of_screen(s, dict.fromkeys(work, 8))
    assert calls == []                                  # read off the screen's rounds: nothing timed again
    assert {r["timed_in"] for r in side.values()} == {"screen"} and side["fast"]["cheapest_side_by_side"] == "fast"
    assert side["torch-fp32"]["cost_vs_cheapest"][1] > 1.0    # 5x the work: clearly costlier over the paired rounds
    assert side["fast"]["p50_ms"] == screen["fast"]["p50_ms"]
    # an SLO batch other than the screen's, or rows of two screen runs (a resumed screen), get their own run
    assert srch._side_by_side_of_screen(s, {"fast": 8, "close": 1}) == {}
    s.store.save({**screen["close"], "screen_run": "another run"})
    assert srch._side_by_side_of_screen(s, {"fast": 8, "close": 8}) == {}
