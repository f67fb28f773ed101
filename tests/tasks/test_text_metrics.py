"""ROUGE-L and chrF against examples worked out by hand."""
import pytest

from workbench.tasks.text_metrics import chrf, lcs_length, rouge_l, text_metric


def test_lcs():
    assert lcs_length(list("ABCBDAB"), list("BDCABA")) == 4   # the textbook example (CLRS): BCBA
    assert lcs_length([], ["a"]) == 0


def test_rouge_l_by_hand():
    # pred 6 words, ref 6 words, LCS "the cat on the mat" = 5: P = R = 5/6, F1 = 5/6.
    assert rouge_l("The cat sat on the mat.", "the cat was on the mat") == pytest.approx(100 * 5 / 6)
    # pred 2 words, ref 4, LCS 2: P = 1, R = 0.5, F1 = 2/3.
    assert rouge_l("police killed", "police killed the gunman") == pytest.approx(100 * 2 / 3)
    # Order matters: LCS of "b a" vs "a b" is 1: P = R = 0.5.
    assert rouge_l("b a", "a b") == pytest.approx(50.0)
    assert rouge_l("", "a b") == 0.0 and rouge_l("x", "y") == 0.0
    assert rouge_l("Same text!", "same text") == 100.0


def test_chrf_by_hand():
    # "ab" vs "ac", whitespace ignored. n=1: hyp {a,b}, ref {a,c}: 1 match, P = R = 1/2.
    # n=2: "ab" vs "ac": 0 matches, P = R = 0. n>=3: too short, left out. Mean P = R = 1/4 -> F2 = 1/4.
    assert chrf("ab", "ac") == pytest.approx(25.0)
    # "aab" vs "ab": n=1 hyp {a:2,b:1} ref {a:1,b:1}: clipped 2, P = 2/3, R = 1.
    # n=2 hyp {aa, ab} ref {ab}: 1 match, P = 1/2, R = 1. Mean P = 7/12, R = 1.
    p, r = 7 / 12, 1.0
    assert chrf("a a b", "ab") == pytest.approx(100 * 5 * p * r / (4 * p + r))
    assert chrf("the same", "thesame") == 100.0 and chrf("xyz", "abc") == 0.0 and chrf("", "abc") == 0.0


def test_unknown_metric_is_named():
    with pytest.raises(ValueError, match="use one of \\['chrf', 'rouge_l'\\]"):
        text_metric("bleu")
