"""Generated-text quality: ROUGE-L (summarisation) and chrF (translation), per example, in plain Python.

Both score one prediction against one reference on a 0-100 scale, so a task's value is the mean over examples and
its CI a bootstrap over the same per-example scores (:func:`workbench.util.stats.bootstrap_ci`).

- ROUGE-L F1 (Lin 2004), as the ``rouge_score`` package computes it without stemming: lowercase, words are runs of
  ``[a-z0-9]``, the longest common subsequence ``L`` gives P = L / |pred|, R = L / |ref|, F1 = 2PR / (P + R).
- chrF (Popović 2015): character n-grams n = 1..6 with whitespace removed; precision and recall (clipped n-gram
  matches) are averaged over the orders both texts are long enough for, then F_beta with beta = 2.
"""
from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[a-z0-9]+")


def rouge_tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def lcs_length(a: list, b: list) -> int:
    """Length of the longest common subsequence, one row of the DP table at a time (O(|a|·|b|) time, O(|b|) memory)."""
    prev = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(prev[j] + 1 if x == y else max(prev[j + 1], row[j]))
        prev = row
    return prev[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 x 100 of one prediction against one reference."""
    pred, ref = rouge_tokens(prediction), rouge_tokens(reference)
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    p, r = lcs / len(pred), lcs / len(ref)
    return 100.0 * 2 * p * r / (p + r)


def _char_ngrams(text: str, n: int) -> Counter:
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))


def chrf(prediction: str, reference: str, order: int = 6, beta: float = 2.0) -> float:
    """chrF x 100 of one prediction against one reference (recall weighted ``beta`` times precision)."""
    pred, ref = "".join(prediction.split()), "".join(reference.split())
    precisions, recalls = [], []
    for n in range(1, order + 1):
        hyp, gold = _char_ngrams(pred, n), _char_ngrams(ref, n)
        if not hyp or not gold:
            continue  # an order longer than either text has nothing to match: left out of the average
        match = sum((hyp & gold).values())
        precisions.append(match / sum(hyp.values()))
        recalls.append(match / sum(gold.values()))
    if not precisions:
        return 0.0
    p, r = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p == 0 and r == 0:
        return 0.0
    return 100.0 * (1 + beta ** 2) * p * r / (beta ** 2 * p + r)


TEXT_METRICS = {"rouge_l": rouge_l, "chrf": chrf}


def text_metric(name: str):
    """The per-example scorer called ``name`` ("rouge_l" or "chrf")."""
    if name not in TEXT_METRICS:
        raise ValueError(f"text metric {name!r} unknown: use one of {sorted(TEXT_METRICS)}")
    return TEXT_METRICS[name]
