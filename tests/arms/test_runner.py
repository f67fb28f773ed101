"""The one runner: equal warm-up, order per round, failures as rows, selection then a fresh confirmation."""
from pathlib import Path

import pytest

from fakes import fake_arm
from workbench.arms.base import ArmContext
from workbench.arms.runner import build_arms, compare, time_arms


def _built(arms):
    return build_arms(arms, ArmContext()).built


def test_every_arm_gets_the_same_untimed_warm_up_and_the_first_call_is_reported_apart():
    calls = []
    arms = [fake_arm("base", 10.0, baseline=True, calls=calls), fake_arm("fast", 2.0, calls=calls),
            fake_arm("mid", 5.0, calls=calls)]
    run = time_arms(_built(arms), rounds=4, calls_per_turn=2, warmup=3)
    for name in ("base", "fast", "mid"):
        assert calls.count(name) - run.timing[name].n_calls == 3 == run.warmup
        assert run.timing[name].n_calls == 4 * 2
    warm = calls[:9]                                # warm-up first, an arm's 3 calls together, before any timed call
    assert sorted(warm) == ["base"] * 3 + ["fast"] * 3 + ["mid"] * 3 and all(len(set(warm[i:i + 3])) == 1
                                                                             for i in (0, 3, 6))
    assert run.first_ms == {"base": 10.0, "fast": 2.0, "mid": 5.0}
    assert run.ratio("base", "fast") == 5.0 and run.ratio("base", "mid") == 2.0


def test_references_are_timed_in_the_same_rounds_as_the_arms_and_come_back_apart_from_them():
    calls = []
    arms = [fake_arm("base", 10.0, baseline=True, calls=calls), fake_arm("fast", 2.0, calls=calls)]
    run = time_arms(_built(arms), rounds=3, calls_per_turn=1, warmup=1, shuffle_seed=None,
                    references={"probe": lambda: calls.append("probe")})
    assert set(run.timing) == {"base", "fast"} and set(run.reference) == {"probe"}
    assert run.reference["probe"].n_calls == run.timing["base"].n_calls == 3
    timed = calls[3:]                               # after each one's warm-up call: every round has all three
    assert all(sorted(timed[i:i + 3]) == ["base", "fast", "probe"] for i in (0, 3, 6))
    with pytest.raises(ValueError, match="also arm names"):
        time_arms(_built(arms), rounds=1, references={"fast": lambda: None})


def test_rotation_moves_every_arm_one_place_per_round():
    calls = []
    arms = [fake_arm(n, 1.0, baseline=n == "a", calls=calls) for n in "abc"]
    time_arms(_built(arms), rounds=3, calls_per_turn=1, warmup=0, shuffle_seed=None)
    assert calls == list("abc" "bca" "cab")


def test_seeded_shuffle_is_reproducible_and_differs_between_rounds():
    def order(seed):
        calls = []
        arms = [fake_arm(n, 1.0, baseline=n == "a", calls=calls) for n in "abcde"]
        time_arms(_built(arms), rounds=6, calls_per_turn=1, warmup=0, shuffle_seed=seed)
        return [tuple(calls[i:i + 5]) for i in range(0, 30, 5)]

    first = order(7)
    assert first == order(7) and first != order(8)
    assert all(sorted(r) == list("abcde") for r in first)
    assert len(set(first)) > 1                           # not the same order every round


def test_confirmation_is_a_fresh_run_of_the_winner_against_the_baseline_only():
    phase = {"now": "selection"}
    # "fast" is 4x the baseline while the selection run is timed and 2x afterwards: the headline must be 2x
    fast_ms = lambda: 2.5 if phase["now"] == "selection" else 5.0   # noqa: E731
    confirm = lambda: phase.update(now="confirmation")  # noqa: E731 - quality runs between the two runs
    ok = [1] * 50
    arms = [fake_arm("base", 10.0, ok, baseline=True, on_quality=confirm), fake_arm("fast", fast_ms, ok),
            fake_arm("lossy", 1.0, [0] * 10 + [1] * 40)]
    result = compare(arms, ArmContext(), tolerance=1.0, rounds=3, calls_per_turn=2, warmup=1)
    assert result.pick.arm == "fast" and result.pick.checked
    assert result.selection_speedup == 4.0 and result.confirmed_speedup == 2.0
    assert set(result.confirmation.timing) == {"base", "fast"} and result.confirmation.timing["fast"].n_calls == 6
    assert result.row("fast")["speedup"] == 4.0 and result.row("lossy")["eligible"] is False
    assert result.row("lossy")["drop_pts"] == pytest.approx(20.0)


def test_baseline_pick_needs_no_confirmation_run():
    ok = [1] * 20
    arms = [fake_arm("base", 10.0, ok, baseline=True), fake_arm("lossy", 1.0, [0] * 10 + [1] * 10)]
    result = compare(arms, ArmContext(), tolerance=1.0, rounds=2, warmup=0)
    assert result.pick.arm == "base" and result.confirmation is None and result.confirmed_speedup == 1.0
    assert result.selection_speedup == 1.0 and "no arm is faster" in result.pick.reason


def test_without_quality_the_pick_is_unchecked_and_nothing_is_within_tolerance():
    ok = [1] * 20
    arms = [fake_arm("base", 10.0, ok, baseline=True), fake_arm("fast", 2.0, ok), fake_arm("mid", 5.0, ok)]
    result = compare(arms, ArmContext(), tolerance=1.0, measure_quality=False, rounds=2, warmup=0)
    assert result.pick.arm == "fast" and not result.pick.checked and "unchecked" in result.pick.reason
    assert not result.quality_measured
    assert [r["eligible"] for r in result.rows] == [True, None, None]
    assert all(r["drop_ci_pts"] is None and r["quality"] is None for r in result.rows)
    assert result.confirmed_speedup == 5.0          # still confirmed on fresh timings


def test_unavailable_skipped_failed_and_crashed_arms_are_rows_with_the_reason():
    ok = [1] * 20
    arms = [fake_arm("base", 10.0, ok, baseline=True), fake_arm("fast", 2.0, ok),
            fake_arm("bf16", 1.0, ok, kind="bf16", skip_reason="no AMX/AVX512-BF16: bf16 would run emulated"),
            fake_arm("compiled", 1.0, ok, kind="compile"), fake_arm("broken", 1.0, ok, build_error="no such kernel"),
            fake_arm("crashy", 0.5, ok, crash_after=4)]
    closed = []
    result = compare(arms, ArmContext(), tolerance=1.0, skip_kinds=("compile",), rounds=3, calls_per_turn=2,
                     warmup=1)
    rows = {r["arm"]: r for r in result.rows}
    assert list(rows) == ["base", "fast", "bf16", "compiled", "broken", "crashy"]
    assert rows["bf16"]["status"] == "not available here" and "emulated" in rows["bf16"]["reason"]
    assert rows["compiled"]["status"] == "skipped" and rows["compiled"]["reason"].startswith(
        "skipped in this run (--skip compile); compiled notes")
    assert rows["broken"]["status"] == "failed" and rows["broken"]["reason"] == ("build failed: RuntimeError: no "
                                                                                 "such kernel")
    assert rows["crashy"]["status"] == "failed" and "crashed while timed: RuntimeError: kernel crashed" in \
        rows["crashy"]["reason"] and rows["crashy"]["p50_ms"] is None
    assert result.pick.arm == "fast" and result.confirmed_speedup == 5.0 and not closed


def test_a_baseline_that_fails_to_build_stops_the_comparison_with_the_reason():
    arms = [fake_arm("base", 10.0, [1], baseline=True, build_error="no model"), fake_arm("fast", 2.0, [1])]
    with pytest.raises(RuntimeError, match="baseline arm 'base' did not build: build failed: RuntimeError: no model"):
        compare(arms, ArmContext(), tolerance=1.0, rounds=1, warmup=0)


def test_one_process_per_arm_times_in_the_child_and_a_dead_process_is_a_row():
    recipe = (str(Path(__file__).with_name("recipe_fake.py")), "catalogue", {"crash": "yes"})
    from recipe_fake import catalogue

    arms, ctx = catalogue(crash="yes")
    prepared = build_arms(arms, ctx, isolate=True, recipe=recipe)
    try:
        run = time_arms(prepared.built, rounds=3, calls_per_turn=2, warmup=1)
        assert set(run.timing) == {"base", "quick"} and "ended without an answer" in run.errors["crash"]
        # the child timed its own 4 ms / 1 ms spins: the pipe's round trip is not in the figure
        assert 3.5 < run.timing["base"].min_ms < 40 and run.timing["quick"].min_ms < run.timing["base"].min_ms
        assert run.ratio("base", "quick") > 1.5
    finally:
        prepared.close()
    assert all(not b.close for b in prepared.built.values())


def test_bad_comparisons_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="exactly one baseline"):
        build_arms([fake_arm("a", 1.0), fake_arm("b", 1.0)], ArmContext())
    with pytest.raises(ValueError, match="unique"):
        build_arms([fake_arm("a", 1.0, baseline=True), fake_arm("a", 1.0)], ArmContext())
    with pytest.raises(ValueError, match="recipe"):
        build_arms([fake_arm("a", 1.0, baseline=True)], ArmContext(), isolate=True)
    with pytest.raises(ValueError, match=r"unknown arm\(s\) \['zz'\]"):
        build_arms([fake_arm("a", 1.0, baseline=True)], ArmContext(), only=["zz"])
