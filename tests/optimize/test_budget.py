import pytest

from workbench.optimize.budget import Budget, parse_duration, parse_rate


def test_parse_duration_units_and_errors():
    assert parse_duration("20m") == 1200.0
    assert parse_duration("1.5h") == 5400.0
    assert parse_duration(" 90s ") == 90.0
    assert parse_duration(45) == 45.0
    for bad in ("soon", "0", "-5m", "10 minutes"):
        with pytest.raises(ValueError, match="budget"):
            parse_duration(bad)


def test_parse_rate():
    assert parse_rate("5M/day") == 5e6
    assert parse_rate("200k/day") == 2e5
    assert parse_rate("1e6") == 1e6
    assert parse_rate(None) is None
    with pytest.raises(ValueError, match="requests per day"):
        parse_rate("lots")


def test_estimates_use_measured_figures_once_there_are_some():
    b = Budget(100.0)
    prior = b.build_estimate(["compile"])
    b.build_s["compile"] = [2.0, 4.0]
    assert b.build_estimate(["compile"]) == pytest.approx(3.0 * 1.25)
    assert prior > b.build_estimate(["compile"])
    b.point_s += [1.0, 3.0]
    assert b.sweep_estimate(4, point_seconds=10.0) == pytest.approx(4 * 2.0 * 1.25)
    assert b.fits(1.0) and not b.fits(1e6)
    assert "needs ~50 s" in b.why_not("x", 50.0)


def test_spent_before_counts_against_the_budget():
    assert Budget(100.0, spent_before_s=60.0).left_s <= 40.0
