import math

import numpy as np
import pytest

from workbench.measure.quality import accuracy_with_ci, bootstrap_ci, perplexity_with_ci, top1_agreement


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
