import math

import numpy as np
import pytest

from workbench.measure.quality import top1_agreement
from workbench.util.stats import (NO_MEASURABLE_LOSS, accuracy_with_ci, bootstrap_ci, describe_drop,
                                  paired_bootstrap_diff, paired_bootstrap_ratio, perplexity_with_ci)


def test_accuracy_interval_brackets_the_value_and_shrinks_with_n():
    acc, low, high = accuracy_with_ci([True] * 70 + [False] * 30)
    assert low < acc == 0.7 < high
    _, low_big, high_big = accuracy_with_ci([True] * 700 + [False] * 300)
    assert (high_big - low_big) < (high - low)


def test_perplexity_is_exp_mean_nll():
    ppl, low, high = perplexity_with_ci([2.0 * 10, 3.0 * 10], [10, 10])
    assert ppl == pytest.approx(math.exp(2.5))
    assert low <= ppl <= high


def test_empty_split_is_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        bootstrap_ci([])


def test_top1_agreement():
    a = np.array([[1, 0], [0, 1], [1, 0]])
    b = np.array([[1, 0], [1, 0], [1, 0]])
    assert top1_agreement(a, b) == pytest.approx(2 / 3)


def _flip(scores, indices):
    out = np.array(scores, dtype=float)
    out[list(indices)] = 1 - out[list(indices)]
    return out


def test_paired_difference_is_exact_and_tighter_than_two_separate_intervals():
    parent = np.array([1.0] * 160 + [0.0] * 40)                   # accuracy 0.80 on 200 examples
    variant = _flip(parent, range(0, 6))                          # 6 examples lost, none gained: 0.77
    diff, low, high = paired_bootstrap_diff(parent, variant)
    assert diff == pytest.approx(6 / 200)
    assert 0 < low <= diff <= high                                 # every resample loses >= 0 examples, most lose some
    # The same difference read off two separate intervals spans ~ the sum of their widths: far wider.
    _, p_low, p_high = accuracy_with_ci(parent)
    _, v_low, v_high = accuracy_with_ci(variant)
    assert (high - low) < 0.5 * ((p_high - p_low) + (v_high - v_low))
    assert (p_low - v_high) < 0 < diff                             # separate CIs overlap: they could not tell


def test_a_drop_inside_its_interval_is_no_measurable_loss():
    parent = np.array([1.0] * 160 + [0.0] * 40)
    swapped = _flip(parent, [0, 1, 2, 160, 161])                   # 3 lost, 2 gained: drop 0.5 pts, noise
    diff, low, high = paired_bootstrap_diff(parent, swapped)
    assert diff == pytest.approx(1 / 200) and low < 0 < high
    assert describe_drop(diff, low, high) == NO_MEASURABLE_LOSS
    lost = _flip(parent, range(20))                               # 20 lost: 10 pts, well outside noise
    diff, low, high = paired_bootstrap_diff(parent, lost)
    assert describe_drop(diff, low, high) == 10.0
    assert paired_bootstrap_diff(parent, parent) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="same examples"):
        paired_bootstrap_diff(parent, parent[:-1])


def test_paired_ratio_for_retention():
    teacher = np.array([1.0] * 150 + [0.0] * 50)
    student = _flip(teacher, range(15))                           # 135 / 150 = 0.9 retention
    ratio, low, high = paired_bootstrap_ratio(student, teacher)
    assert ratio == pytest.approx(0.9) and low < 0.9 < high < 1.0
