"""TOFU metrics against values worked out by hand (docs/definitions.md, "TOFU metrics")."""

import math

import numpy as np
import pytest

from unlearn.evaluation import metrics
from unlearn.evaluation.results import EvalResult, SplitResult, format_table
from unlearn.names import FORGET_QUALITY, MODEL_UTILITY, SUMMARY_KEYS

LN2, LN4 = math.log(2), math.log(4)


def test_probability_is_exp_of_minus_mean_token_nll():
    """NLLbar 0 and ln 2 give p = 1 and 1/2; the split's figure is their mean, 3/4."""
    p = metrics.probability(np.array([0.0, LN2]))
    np.testing.assert_allclose(p, [1.0, 0.5])
    assert p.mean() == pytest.approx(0.75)


def test_normalized_probability_over_perturbed_answers():
    """True answer p = 1/2, three perturbed p = 1/4 each: 0.5 / (0.5 + 0.75) = 0.4.

    With one perturbed answer missing (NaN) and one at 1/4: 0.5 / (0.5 + 0.25) = 2/3.
    """
    p = metrics.normalized_probability(np.array([LN2, LN2]), np.array([[LN4, LN4, LN4], [LN4, np.nan, np.nan]]))
    np.testing.assert_allclose(p, [0.4, 2 / 3])


def test_normalized_probability_survives_underflow():
    """NLLbar 800 vs 801 (p underflows to 0 in float64): 1 / (1 + e^-1 · 3) = 0.4754..., not 0/0."""
    p = metrics.normalized_probability(np.array([800.0]), np.array([[801.0, 801.0, 801.0]]))
    np.testing.assert_allclose(p, [1 / (1 + 3 * math.exp(-1))])


def test_truth_ratio_and_its_two_reductions():
    """Base NLLbar 1, perturbed 2, 3, 4 (mean 3): R = e^2. Base 2, perturbed 1, 1: R = e^-1.

    forget:  mean(min(R, 1/R)) = (e^-2 + e^-1) / 2 = (0.13534 + 0.36788) / 2 = 0.25161
    utility: mean(max(0, 1 - 1/R)) = ((1 - e^-2) + max(0, 1 - e)) / 2 = 0.86466 / 2 = 0.43233
    """
    ratios = metrics.truth_ratio(np.array([1.0, 2.0]), np.array([[2.0, 3.0, 4.0], [1.0, 1.0, np.nan]]))
    np.testing.assert_allclose(ratios, [math.exp(2), math.exp(-1)])
    assert metrics.forget_truth_ratio(ratios) == pytest.approx((math.exp(-2) + math.exp(-1)) / 2)
    assert metrics.utility_truth_ratio(ratios) == pytest.approx((1 - math.exp(-2)) / 2)


def test_truth_ratio_extremes_do_not_warn_or_break():
    """R = inf (overflow) counts as fully preferring the base answer; R = 0 as fully rejecting it."""
    ratios = metrics.truth_ratio(np.array([0.0, 1000.0]), np.array([[1000.0], [0.0]]))
    assert ratios[0] == math.inf and ratios[1] == 0.0
    assert metrics.forget_truth_ratio(ratios) == 0.0
    assert metrics.utility_truth_ratio(ratios) == 0.5


def test_rouge_l_recall():
    """Target 'the cat sat on the mat' (6 tokens), prediction 'the cat sat': LCS 3, recall 3/6.

    Case and punctuation are ignored and words are stemmed: 'Dogs running!' matches 'dog run'.
    """
    np.testing.assert_allclose(metrics.rouge_l_recall(["the cat sat", "Dogs running!", ""],
                                                      ["the cat sat on the mat", "dog run", "anything"]),
                               [0.5, 1.0, 0.0])


def test_forget_quality_is_the_ks_p_value():
    """Identical samples: p = 1. Disjoint samples of 3 and 3: D = 1, exact p = 2 / C(6,3) = 0.1."""
    assert metrics.forget_quality(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0])) == (1.0, None)
    p, reason = metrics.forget_quality(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    assert p == pytest.approx(0.1) and reason is None


def test_forget_quality_without_retain_model_is_unavailable_with_a_reason():
    value, reason = metrics.forget_quality(np.array([1.0, 2.0]), None)
    assert value is None and "retain" in reason
    value, reason = metrics.forget_quality(np.array([1.0, 2.0]), np.array([1.0]))
    assert value is None and "1 forget questions" in reason


def test_model_utility_is_the_harmonic_mean_of_nine_numbers():
    """Eight 1s and one 1/2: 9 / (8 + 2) = 0.9. Any 0 gives 0; any NaN gives NaN."""
    assert metrics.model_utility([1.0] * 8 + [0.5]) == pytest.approx(0.9)
    assert metrics.model_utility([1.0] * 8 + [0.0]) == 0.0
    assert math.isnan(metrics.model_utility([1.0] * 8 + [math.nan]))
    with pytest.raises(ValueError, match="9 numbers"):
        metrics.model_utility([1.0] * 8)


def _split(name, answer_nll, base_nll, perturbed_nll, rouge):
    n = len(answer_nll)
    return SplitResult(name, np.arange(n), [f"q{i}" for i in range(n)], [f"a{i}" for i in range(n)],
                       [f"g{i}" for i in range(n)], np.array(answer_nll, float), np.array(base_nll, float),
                       np.array(perturbed_nll, float), np.array(rouge, float))


def hand_result():
    """Every split: two questions, NLLbar of the answer 0 and ln 2, base 1, perturbed 2, 3, 4 (R = e^2).

    forget, retain probability = (1 + 0.5) / 2 = 0.75. Real authors and world facts, normalised over
    perturbed p = e^-2, e^-3, e^-4 (sum S = 0.18410): (1/(1+S) + 0.5/(0.5+S)) / 2 = (0.84453 + 0.73089) / 2.
    Truth ratio: forget min(R, 1/R) = e^-2; others 1 - e^-2. ROUGE-L 1 and 0.5: mean 0.75.
    """
    splits = {name: _split(name, [0.0, LN2], [1.0, 1.0], [[2.0, 3.0, 4.0]] * 2, [1.0, 0.5])
              for name in ("forget", "retain", "real_authors", "world_facts")}
    return EvalResult(splits)


def test_split_figures_and_summary_by_hand():
    summary = hand_result().summary()
    assert list(summary) == list(SUMMARY_KEYS)
    s = math.exp(-2) + math.exp(-3) + math.exp(-4)
    general_probability = (1 / (1 + s) + 0.5 / (0.5 + s)) / 2
    assert summary["forget/probability"] == pytest.approx(0.75)
    assert summary["utility/retain_probability"] == pytest.approx(0.75)
    assert summary["utility/world_facts_probability"] == pytest.approx(general_probability)
    assert summary["forget/truth_ratio"] == pytest.approx(math.exp(-2))
    assert summary["utility/real_authors_truth_ratio"] == pytest.approx(1 - math.exp(-2))
    assert summary["forget/rouge_l"] == pytest.approx(0.75)
    nine = [0.75, 0.75, 1 - math.exp(-2)] + [general_probability, 0.75, 1 - math.exp(-2)] * 2
    assert summary[MODEL_UTILITY] == pytest.approx(9 / sum(1 / v for v in nine))
    assert summary[FORGET_QUALITY] is None


def test_result_round_trips_through_json_and_compares_with_retain():
    import json

    result = hand_result()
    again = EvalResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again.summary() == result.summary()
    assert again.splits["forget"].generation == ["g0", "g1"]
    table = format_table({"model": result.summary()})
    assert "| forget quality | n/a |" in table and "| Retain probability | 0.750 |" in table
    assert result.compare_with_retain(again).forget_quality == 1.0
