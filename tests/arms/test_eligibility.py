"""The one eligibility rule: the upper end of the paired CI of the drop within the tolerance."""
from workbench.arms.eligibility import eligibility, pick, within_tolerance


def test_a_ci_containing_zero_whose_upper_end_is_past_the_tolerance_is_not_eligible():
    assert not within_tolerance({"drop_ci_pts": [-1.0, 3.0], "drop": "no measurable loss"}, 1.0)
    assert within_tolerance({"drop_ci_pts": [-0.5, 1.0]}, 1.0)            # on the boundary: within
    assert within_tolerance({"drop_ci_pts": [0.2, 0.9]}, 1.0)             # measurable but small enough
    assert within_tolerance({"drop_ci_pts": [-3.0, -1.0]}, 1.0)           # measurably better
    assert not within_tolerance({"drop_ci_pts": [1.1, 5.0]}, 1.0)
    assert not within_tolerance({}, 1.0) and not within_tolerance({"drop_ci_pts": None}, 5.0)
    assert within_tolerance({"baseline": True}, 0.0)                      # the baseline always is


def test_eligibility_is_unknown_not_false_when_quality_was_not_measured():
    assert eligibility({"drop_ci_pts": [-0.1, 0.1]}, 1.0, quality_measured=False) is None
    assert eligibility({"baseline": True}, 1.0, quality_measured=False) is True
    assert eligibility({"drop_ci_pts": [-1.0, 3.0]}, 1.0) is False


def test_pick_is_the_fastest_timed_row_within_tolerance():
    rows = [{"arm": "fp32", "baseline": True, "p50_ms": 10.0},
            {"arm": "fast-lossy", "p50_ms": 3.0, "drop_ci_pts": [-1.0, 3.0]},
            {"arm": "ok", "p50_ms": 5.0, "drop_ci_pts": [-0.5, 0.8]},
            {"arm": "skipped", "p50_ms": None, "drop_ci_pts": [0.0, 0.0]}]
    assert pick(rows, 1.0).arm == "ok" and pick(rows, 1.0).checked
    assert pick(rows, 3.0).arm == "fast-lossy"
    assert pick(rows[:2], 1.0).arm == "fp32" and "no arm is faster" in pick(rows[:2], 1.0).reason
    unchecked = pick(rows, 1.0, quality_measured=False)
    assert unchecked.arm == "fast-lossy" and not unchecked.checked and "unchecked" in unchecked.reason
    assert pick([{"arm": "x", "p50_ms": None}], 1.0).row is None
