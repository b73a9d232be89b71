"""MUSE's metric functions and MuseResult on hand-worked values."""

import json
import math

import numpy as np
import pytest

from tests.helpers import tiny_tokenizer
from unlearn.evaluation.mia import min_k_score
from unlearn.evaluation.muse_metrics import (
    NO_RETAIN,
    cut_at_stop_words,
    knowmem_prompt,
    mean_score,
    muse_min_k_score,
    privleak,
    privleak_auc,
    rouge_l_f1,
    verbmem_reference,
)
from unlearn.evaluation.muse_results import MIN_K_AUC, GenerationSet, MuseResult
from unlearn.names import (
    EXACT_MEMORIZATION,
    EXTRACTION_STRENGTH,
    KNOWMEM_FORGET,
    KNOWMEM_RETAIN,
    PRIVLEAK,
    VERBMEM,
    is_fluency_key,
    mia_key,
)


def test_rouge_l_f1_hand_worked_and_without_stemmer():
    # LCS "the cat on the mat" = 5 of 6 words each way: P = R = F1 = 5/6.
    assert rouge_l_f1(["the cat lay on the mat"], ["the cat sat on the mat"])[0] == pytest.approx(5 / 6)
    # LCS 2: precision 2/2, recall 2/4 -> F1 = 2/3 (recall alone would be 1/2).
    assert rouge_l_f1(["a c"], ["a b c d"])[0] == pytest.approx(2 / 3)
    # No stemmer (MUSE's RougeEvalLogger): "cats" is not "cat", so 1 of 2 words match (a stemmer gives 1.0).
    assert rouge_l_f1(["running cats"], ["running cat"])[0] == pytest.approx(0.5)
    assert rouge_l_f1([""], ["anything"])[0] == 0.0
    with pytest.raises(ValueError):
        rouge_l_f1(["a"], [])


def test_mean_score_is_scaled_by_100_like_muse():
    assert mean_score(np.array([0.5, 1.0])) == pytest.approx(75.0)
    assert mean_score(np.array([])) is None


def test_knowmem_prompt_is_muses_few_shot_format():
    icl = [{"question": "Q1?", "answer": "A1."}, {"question": "Q2?", "answer": "A2."}]
    assert knowmem_prompt("Q?", icl) == ("Question: Q1?\nAnswer: A1.\n\nQuestion: Q2?\nAnswer: A2.\n\n"
                                         "Question: Q?\nAnswer: ")
    assert knowmem_prompt("Q?", []) == "Question: Q?\nAnswer: "


def test_output_is_cut_at_each_stop_word_in_turn():
    assert cut_at_stop_words("Paris\n\nQuestion: x") == "Paris"
    assert cut_at_stop_words("Paris\nQuestion who") == "Paris"
    assert cut_at_stop_words("Paris Question: x") == "Paris "  # not stripped, as MUSE
    assert cut_at_stop_words("a\nQuestion:b\n\nc") == "a"
    assert cut_at_stop_words("\n\nParis") == ""


def test_verbmem_reference_counts_the_bos_among_its_tokens():
    tok = tiny_tokenizer()
    gt = "Writer number 3 lives in city 3 and writes every day."
    ids = tok(gt)["input_ids"]
    assert ids[0] == tok.bos_token_id and len(ids) > 6
    assert verbmem_reference(tok, gt, 5) == tok.decode(ids[1:5])  # 4 text tokens, not 5
    assert verbmem_reference(tok, gt, 1000) == gt


def test_muse_min_k_keeps_the_last_token_unlike_open_unlearning():
    logprob = np.array([-1.0, -2.0, -3.0, -4.0, -5.0])
    # MUSE: int(5 * 0.4) = 2 lowest of all five: -5, -4 -> 4.5.
    assert muse_min_k_score(logprob, 0.4) == pytest.approx(4.5)
    # open-unlearning: the last token out, int(4 * 0.4) = 1 lowest: -4 -> 4.0.
    assert min_k_score(logprob, 0.4) == pytest.approx(4.0)
    assert muse_min_k_score(np.array([-1.0, -2.0]), 0.4) == pytest.approx(2.0)  # int(0.8) = 0 -> one token
    assert math.isnan(muse_min_k_score(np.array([]), 0.4))


def test_privleak_auc_is_muses_orientation():
    # Memorised: forget texts far likelier (lower Min-K) than holdout -> MUSE's AUC 0 (open-unlearning's 1).
    assert privleak_auc([0.1, 0.2], [1.0, 2.0]) == 0.0
    # P(holdout likelier than forget) + half the ties: 1.5 < 2 once, no ties -> 1/4.
    assert privleak_auc([1.0, 2.0], [1.5, 3.0]) == pytest.approx(0.25)
    assert privleak_auc([1.0, 2.0], [2.0, 3.0]) == pytest.approx(0.125)  # one tie: 1 - open-unlearning's 0.875


def test_privleak_formula_and_sign():
    assert privleak(0.25, 0.5) == (pytest.approx(-50.0), None)  # under-unlearned: negative
    assert privleak(0.75, 0.5) == (pytest.approx(50.0), None)  # over-unlearned: positive
    assert privleak(0.001, 0.4772)[0] == pytest.approx(-99.79, abs=0.01)  # the News target's reported number
    assert privleak(0.3, None) == (None, NO_RETAIN)
    value, reason = privleak(0.3, 0.0)
    assert value is None and "undefined" in reason


def generation_set(truths, generations):
    return GenerationSet([f"prompt {i}" for i in range(len(truths))], truths, generations)


def hand_result(forget_min_k, holdout_min_k, forget_loss, holdout_loss, attacks=("loss", "reference")):
    return MuseResult(
        {"verbmem_forget": generation_set(["a b c d", "x y"], ["a c", "x y"]),
         "knowmem_forget": generation_set(["paris"], ["london"]),
         "knowmem_retain": generation_set(["the cat sat on the mat"], ["the cat lay on the mat"])},
        {"forget": {"muse_min_k": np.array(forget_min_k), "loss": np.array(forget_loss)},
         "holdout": {"muse_min_k": np.array(holdout_min_k), "loss": np.array(holdout_loss)}},
        exact_memorization=np.array([0.5, np.nan]), extraction_strength=np.array([1.0, 0.5]), attacks=attacks)


def test_muse_result_summary_and_comparison_with_retain_hand_worked():
    result = hand_result([1.0, 2.0], [1.5, 3.0], [0.5, 1.0], [2.0, 2.0])
    summary = result.summary()
    assert summary[VERBMEM] == pytest.approx((2 / 3 + 1.0) / 2 * 100)
    assert summary[KNOWMEM_FORGET] == 0.0
    assert summary[KNOWMEM_RETAIN] == pytest.approx(500 / 6)
    assert summary[MIN_K_AUC] == pytest.approx(0.25)
    assert summary[mia_key("loss")] == 1.0  # forget losses [0.5, 1] all below holdout [2, 2]
    assert summary[PRIVLEAK] is None and summary[mia_key("reference")] is None
    assert summary[EXACT_MEMORIZATION] == pytest.approx(0.5)  # NaN (no token) left out, as open-unlearning's None
    assert summary[EXTRACTION_STRENGTH] == pytest.approx(0.75)
    assert mia_key("gradnorm") not in summary  # only the attacks that were run

    assert result.compare_with_retain(None) is result
    assert result.privleak is None and result.privleak_reason == NO_RETAIN
    assert result.mia_reference is None and result.mia_reference_reason == NO_RETAIN

    retain = hand_result([1.0, 2.0], [1.5, 1.5], [1.0, 1.0], [1.0, 1.0])
    assert retain.min_k_auc == pytest.approx(0.5)
    result.compare_with_retain(retain)
    # (0.25 - 0.5) / 0.5 x 100; reference scores: forget [-0.5, 0], holdout [1, 1] -> AUC 1.
    assert result.summary()[PRIVLEAK] == pytest.approx(-50.0) and result.privleak_reason is None
    assert result.summary()[mia_key("reference")] == 1.0

    fewer = hand_result([1.0], [1.5], [1.0], [1.0])
    result.compare_with_retain(fewer)
    assert result.privleak is None and "same MUSE sets" in result.privleak_reason


def test_muse_result_round_trips_through_json():
    result = hand_result([1.0, 2.0], [1.5, 3.0], [0.5, 1.0], [2.0, 2.0])
    result.compare_with_retain(hand_result([1.0, 2.0], [1.5, 1.5], [1.0, 1.0], [1.0, 1.0]))
    result.info["settings"] = {"max_length": 64}
    data = json.loads(json.dumps(result.to_dict()))
    assert data["benchmark"] == "muse" == MuseResult.BENCHMARK
    back = MuseResult.from_dict(data)
    assert back.summary() == pytest.approx(result.summary())
    assert back.samples() == result.samples() and back.info == result.info
    assert back.privleak_reason is None and back.attacks == ("loss", "reference")


def test_fluency_and_samples_keys():
    result = hand_result([1.0, 2.0], [1.5, 3.0], [0.5, 1.0], [2.0, 2.0])
    fluency = result.fluency()
    assert set(fluency) == {f"{key}_{figure}" for key in (VERBMEM, KNOWMEM_FORGET, KNOWMEM_RETAIN)
                            for figure in ("distinct_2", "repetition", "short_answers")}
    assert all(is_fluency_key(key) for key in fluency)
    samples = result.samples()
    assert samples["verbmem_forget"][0] == ("prompt 0", "a b c d", "a c")
    assert set(samples) == {"verbmem_forget", "knowmem_forget", "knowmem_retain"}
    assert MuseResult.UTILITY_KEY == KNOWMEM_RETAIN and MuseResult.FORGET_KEY == VERBMEM
