"""Fluency of generations (distinct-2, repetition loops, short answers) on fixed strings, worked by hand."""

import numpy as np
import pytest

from unlearn.evaluation.fluency import (distinct_n, fluency, has_loop, mean_distinct_n, repetition_rate,
                                       short_answer_rate, words)
from unlearn.evaluation.results import EvalResult, SplitResult
from unlearn.names import FLUENCY_KEYS, SUMMARY_KEYS


def test_words_split_punctuation_and_lower_case():
    assert words("Alice was born in Paris.") == ["alice", "was", "born", "in", "paris", "."]
    assert words("!!!") == ["!", "!", "!"]
    assert words("") == []


@pytest.mark.parametrize("text, expected", [
    # 6 words, 5 bigrams, all different.
    ("Alice was born in Paris.", 1.0),
    # 4 words, 3 bigrams (the the) x 3: 1 distinct.
    ("the the the the", 1 / 3),
    # a b a b a b: bigrams ab ba ab ba ab, 2 distinct of 5.
    ("a b a b a b", 2 / 5),
    # x y z x y z w: xy yz zx xy yz zw, 4 distinct of 6.
    ("x y z x y z w", 4 / 6),
    ("hello", None),  # one word: no bigram
    ("", None),
])
def test_distinct_2_by_hand(text, expected):
    assert distinct_n(text, 2) == (pytest.approx(expected) if expected is not None else None)


def test_mean_distinct_2_skips_texts_without_bigrams():
    # (1 + 1/3) / 2; "hello" and "" have no bigram and are left out.
    assert mean_distinct_n(["Alice was born in Paris.", "the the the the", "hello", ""]) == pytest.approx(2 / 3)
    assert mean_distinct_n(["", "x"]) == 0.0


@pytest.mark.parametrize("text, loop", [
    ("the the the", True),  # period 1, 3 times
    ("the the", False),  # only twice
    ("a b a b a b", True),  # period 2, 3 times
    ("he said a b c d a b c d a b c d ok", True),  # period 4 in the middle
    ("a b c d e a b c d e a b c d e", False),  # period 5 is longer than max_period=4
    ("Alice was born in Paris. Alice was born in Lyon.", False),
    ("!!!", True),
    ("", False),
])
def test_loops_by_hand(text, loop):
    assert has_loop(text) is loop


def test_repetition_rate_and_split_fluency():
    texts = ["the the the the", "Alice was born in Paris.", "a b a b a b", "hello"]
    assert repetition_rate(texts) == 0.5  # 2 of 4 loop
    assert repetition_rate([]) == 0.0
    # distinct-2: (1/3 + 1 + 2/5) / 3, "hello" left out; "hello" is the one short answer of 4.
    assert fluency(texts) == {"distinct_2": pytest.approx((1 / 3 + 1 + 2 / 5) / 3), "repetition": 0.5,
                              "short_answers": 0.25}


def test_a_model_that_stopped_answering_is_not_read_as_fluent():
    # A collapsed GA model's answers: empty, one word, one mark. Distinct-2 and repetition cannot see them
    # (0 and 0: "no bigram" and "no loop"); the short-answer rate is 1.
    silent = ["", "Paris", "!", "  "]
    assert fluency(silent) == {"distinct_2": 0.0, "repetition": 0.0, "short_answers": 1.0}
    assert short_answer_rate(["two words", "Paris.", "x"]) == pytest.approx(1 / 3)  # "Paris." is two: word, mark
    assert short_answer_rate([]) == 0.0


def test_eval_result_reports_fluency_per_split_outside_utility():
    def split(name, generations):
        n = len(generations)
        return SplitResult(name, np.arange(n), ["q"] * n, ["a"] * n, generations, np.zeros(n), np.zeros(n),
                           np.ones((n, 2)), np.ones(n))

    gens = {"forget": ["the the the the", "Alice was born in Paris."], "retain": ["Alice was born in Paris."] * 2,
            "real_authors": ["Paris"] * 2, "world_facts": ["Paris is big"] * 2}
    result = EvalResult({name: split(name, g) for name, g in gens.items()})
    values = result.fluency()
    assert list(values) == list(FLUENCY_KEYS) and not set(FLUENCY_KEYS) & set(SUMMARY_KEYS)
    assert values["forget/distinct_2"] == pytest.approx((1 / 3 + 1) / 2)
    assert values["forget/repetition"] == 0.5
    assert values["utility/retain_distinct_2"] == 1.0 and values["utility/retain_repetition"] == 0.0
    assert values["utility/real_authors_distinct_2"] == 0.0  # one-word answers have no bigram
    assert values["utility/real_authors_short_answers"] == 1.0 and values["forget/short_answers"] == 0.0
    assert result.to_dict()["fluency"] == values
    assert set(result.summary()) == set(SUMMARY_KEYS)  # model utility's inputs are unchanged
