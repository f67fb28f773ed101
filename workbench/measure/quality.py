"""Quality statistics: bootstrap confidence intervals and agreement between two variants."""
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


def top1_agreement(logits_a, logits_b) -> float:
    """Share of positions where two variants pick the same argmax (task-level agreement)."""
    a = np.asarray(logits_a).argmax(-1)
    b = np.asarray(logits_b).argmax(-1)
    return float((a == b).mean())
