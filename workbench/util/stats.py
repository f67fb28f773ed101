"""Quality statistics: bootstrap confidence intervals and paired differences between two variants.

Two variants evaluated on the same examples are compared per example (:func:`paired_bootstrap_diff`): the
examples are resampled together, so the interval is of the difference itself, much tighter than reading it off two
separate intervals. A difference whose interval contains 0 is not measurable at this sample size
(:func:`describe_drop` says "no measurable loss" instead of a number).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                 n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic`` over per-example ``values``.

    Resampling is over examples (rows of ``values``), so a 2-D array of per-example (sum, count)
    pairs works with a ratio statistic, as perplexity needs.
    """
    data = np.asarray(values, dtype=np.float64)
    if len(data) == 0:
        raise ValueError("bootstrap_ci needs at least one example: the eval split is empty")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), size=(n_resamples, len(data)))
    stats = np.array([statistic(data[i]) for i in idx])
    alpha = (1 - confidence) / 2
    return float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def accuracy_with_ci(correct: Sequence[bool]) -> tuple[float, float, float]:
    arr = np.asarray(correct, dtype=np.float64)
    low, high = bootstrap_ci(arr)
    return float(arr.mean()), low, high


def perplexity_with_ci(nll_sums: Sequence[float], token_counts: Sequence[int]) -> tuple[float, float, float]:
    """Perplexity exp(sum NLL / tokens) with a bootstrap interval over documents/blocks."""
    pairs = np.stack([np.asarray(nll_sums, float), np.asarray(token_counts, float)], axis=1)

    def ppl(p: np.ndarray) -> float:
        return float(np.exp(p[:, 0].sum() / p[:, 1].sum()))

    low, high = bootstrap_ci(pairs, statistic=ppl)
    return ppl(pairs), low, high


NO_MEASURABLE_LOSS = "no measurable loss"


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired comparison needs per-example scores on the same examples: got shapes {a.shape} and "
                         f"{b.shape} (evaluate both variants on the same split with the same limit)")
    if len(a) == 0:
        raise ValueError("paired comparison needs at least one example: the eval split is empty")
    return a, b


def paired_bootstrap_diff(a: Sequence[float], b: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                          n_resamples: int = 2000, confidence: float = 0.95,
                          seed: int = 0) -> tuple[float, float, float]:
    """``statistic(a) - statistic(b)`` and its percentile-bootstrap interval, resampling the examples in pairs.

    Args:
        a, b: per-example scores of two variants on the SAME examples, in the same order (e.g. 1/0 correctness; or
            rows of (sum, count) with a ratio ``statistic``).
        statistic: what is compared (default: the mean, i.e. accuracy for 1/0 scores).

    Returns:
        ``(difference, low, high)``.

    Example:
        >>> diff, low, high = paired_bootstrap_diff(parent_correct, int8_correct)   # doctest: +SKIP
        >>> describe_drop(diff, low, high, scale=100)    # "no measurable loss" when 0 is inside [low, high]
    """
    a, b = _paired(a, b)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_resamples, len(a)))
    diffs = np.array([statistic(a[i]) - statistic(b[i]) for i in idx])
    alpha = (1 - confidence) / 2
    return (float(statistic(a) - statistic(b)), float(np.quantile(diffs, alpha)),
            float(np.quantile(diffs, 1 - alpha)))


def paired_bootstrap_ratio(a: Sequence[float], b: Sequence[float], statistic: Callable[[np.ndarray], float] = np.mean,
                           n_resamples: int = 2000, confidence: float = 0.95,
                           seed: int = 0) -> tuple[float, float, float]:
    """``statistic(a) / statistic(b)`` (e.g. a student's accuracy retention) with a paired bootstrap interval."""
    a, b = _paired(a, b)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(a), size=(n_resamples, len(a)))
    ratios = np.array([statistic(a[i]) / statistic(b[i]) if statistic(b[i]) else np.nan for i in idx])
    alpha = (1 - confidence) / 2
    return (float(statistic(a) / statistic(b)), float(np.nanquantile(ratios, alpha)),
            float(np.nanquantile(ratios, 1 - alpha)))


def measurable(low: float, high: float) -> bool:
    """Whether an interval of a difference excludes 0 (the difference is measurable at this sample size)."""
    return low > 0 or high < 0


def describe_drop(drop: float, low: float, high: float, scale: float = 100.0, digits: int = 2) -> float | str:
    """A quality drop (parent - variant) as reported: ``"no measurable loss"`` when its interval contains 0 (the data
    cannot tell it from no change), else the drop in points (``drop x scale``, rounded; negative: a measured gain)."""
    if not measurable(low, high):
        return NO_MEASURABLE_LOSS
    return round(drop * scale, digits)


def paired_quality_drop(parent_scores, scores, higher_is_better: bool, scale: float) -> tuple[float, float, float]:
    """(drop, low, high) x ``scale`` of parent -> variant on the same examples (paired bootstrap). 1-D scores compare
    by their mean (accuracy); rows of (NLL sum, token count) by perplexity exp(sum / count)."""
    def ppl(pairs):
        return float(np.exp(pairs[:, 0].sum() / pairs[:, 1].sum()))

    statistic = np.mean if parent_scores.ndim == 1 else ppl
    first, second = (parent_scores, scores) if higher_is_better else (scores, parent_scores)
    drop, low, high = paired_bootstrap_diff(first, second, statistic)
    return drop * scale, low * scale, high * scale


__all__ = ["bootstrap_ci", "accuracy_with_ci", "perplexity_with_ci", "NO_MEASURABLE_LOSS", "paired_bootstrap_diff",
           "paired_bootstrap_ratio", "measurable", "describe_drop", "paired_quality_drop"]
