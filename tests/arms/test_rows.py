"""The one row builder: figures from the timing, the paired drop with its CI, absent figures None."""
import numpy as np
import pytest

from fakes import fake_arm, quality
from workbench.arms.base import ArmContext
from workbench.arms.rows import MEASURED, NOT_AVAILABLE, arm_row, quality_drop
from workbench.arms.runner import compare
from workbench.measure.interleaved import _arm_timing


def test_row_has_the_speedup_and_the_paired_drop_in_points():
    base_q, q = quality([1] * 40), quality([1] * 36 + [0] * 4)
    arm = fake_arm("int8", 1.0)
    row = arm_row(arm, MEASURED, timing=_arm_timing([4.0, 5.0, 6.0]), baseline_timing=_arm_timing([10.0, 12.0, 20.0]),
                  first_ms=50.0, quality=q, base_quality=base_q, meta={"compile_seconds": 1.5}, isa={"vnni": True},
                  tolerance=1.0)
    assert row["p50_ms"] == 5.0 and row["speedup"] == pytest.approx(12 / 5, abs=1e-3) and row["speedup_min"] == 2.5
    assert row["first_call_ms"] == 50.0 and row["compile_seconds"] == 1.5 and row["isa"] == {"vnni": True}
    assert row["drop_pts"] == pytest.approx(10.0) and row["drop_ci_pts"][0] <= 10.0 <= row["drop_ci_pts"][1]
    assert row["drop"] == 10.0 and row["eligible"] is False and row["quality"] == 0.9 and row["metric"] == "accuracy"


def test_a_row_that_was_not_measured_has_no_figures_not_zeros():
    row = arm_row(fake_arm("ov-bf16", 1.0, skip_reason="no AMX/AVX512-BF16"), NOT_AVAILABLE)
    assert row["status"] == NOT_AVAILABLE and row["reason"] == "no AMX/AVX512-BF16"
    assert all(row[k] is None for k in ("p50_ms", "speedup", "quality", "drop_pts", "eligible"))


def test_perplexity_drop_is_its_increase_in_its_own_unit():
    from workbench.tasks.base import QualityResult

    def ppl(rows):
        rows = np.asarray(rows, dtype=float)
        value = float(np.exp(rows[:, 0].sum() / rows[:, 1].sum()))
        return QualityResult("perplexity", value, value, value, len(rows), higher_is_better=False,
                             per_example=tuple(map(tuple, rows)))

    base = ppl([[2.0, 1.0]] * 20)
    worse = ppl([[2.1, 1.0]] * 20)
    out = quality_drop(base, worse)
    assert out["drop_pts"] == pytest.approx(np.exp(2.1) - np.exp(2.0), abs=1e-3) and out["drop_ci_pts"][0] > 0


def test_an_arm_whose_quality_fails_is_measured_but_not_eligible():
    def broken():
        raise ValueError("eval split missing")

    ok = [1] * 20
    arms = [fake_arm("base", 10.0, ok, baseline=True), fake_arm("fast", 2.0, ok, on_quality=broken)]
    result = compare(arms, ArmContext(), tolerance=1.0, rounds=2, warmup=0)
    row = result.row("fast")
    assert row["status"] == MEASURED and row["eligible"] is False and row["p50_ms"] == 2.0
    assert "quality failed: ValueError: eval split missing" in row["reason"] and result.pick.arm == "base"
