"""Membership-inference attacks, EM and ES on hand-built per-token inputs, and GradNorm against a direct backward."""

import math

import numpy as np
import pytest
import torch

from tests.helpers import QA, tiny_model, tiny_tokenizer
from unlearn.data.formatting import PromptFormat, tokenize_qa
from unlearn.evaluation.mia import (
    MIA_ATTACKS,
    attack_scores,
    exact_memorization,
    extraction_strength,
    gradnorm_scores,
    loss_score,
    memorization,
    mia_auc,
    mia_aucs,
    min_k_plus_plus_score,
    min_k_score,
    roc_auc,
    scored_text,
    zlib_score,
)
from unlearn.models.token_stats import TokenStats

pytestmark = pytest.mark.usefixtures("one_thread")


def arrays(*rows, dtype=np.float32):
    return [np.asarray(r, dtype=dtype) for r in rows]


def test_attack_list_is_the_shared_one():
    assert MIA_ATTACKS == ("loss", "zlib", "min_k", "min_k_plus_plus", "reference", "gradnorm")


def test_roc_auc_counts_pairs_and_half_ties():
    # Positives 2 and 4 against negatives 1, 2, 3: 2 beats 1 and ties 2 (1.5); 4 beats all three (3): 4.5 / 6.
    assert roc_auc(negatives=[1, 2, 3], positives=[2, 4]) == pytest.approx(0.75)
    assert roc_auc([1, 1], [1, 1]) == 0.5
    assert math.isnan(roc_auc([1, float("nan")], [2]))
    with pytest.raises(ValueError):
        roc_auc([], [1.0])


def test_mia_auc_orientation_is_open_unlearnings():
    # Loss-like scores, members labelled 0: forget texts far likelier (lower loss) than holdout -> AUC 1.
    assert mia_auc(member_scores=[0.1, 0.2], nonmember_scores=[1.0, 2.0]) == 1.0
    assert mia_auc(member_scores=[1.0, 2.0], nonmember_scores=[0.1, 0.2]) == 0.0


def test_loss_and_zlib_use_the_mean_nll_of_every_scored_token():
    assert loss_score(np.array([-1.0, -2.0, -3.0])) == pytest.approx(2.0)  # the last token counts here
    # mean NLL 2 over zlib.compress(b"aaaa"), which is 12 bytes long.
    assert zlib_score(np.array([-1.0, -3.0]), "aaaa") == pytest.approx(2.0 / 12)
    assert math.isnan(loss_score(np.array([])))


def test_min_k_leaves_out_the_last_scored_token():
    logprob = np.array([-0.1, -2.0, -0.5, -3.0, -1.0, -9.0])  # -9 is the last token: never read
    # 5 tokens, int(5 * 0.4) = 2 lowest: -3, -2 -> 2.5.
    assert min_k_score(logprob, 0.4) == pytest.approx(2.5)
    # int(5 * 0.1) = 0 -> at least one: -3.
    assert min_k_score(logprob, 0.1) == pytest.approx(3.0)
    assert min_k_score(np.array([-1.0]), 0.4) == 0.0  # nothing left: open-unlearning's 0


def test_min_k_plus_plus_normalises_by_the_vocabulary_statistics():
    logprob, mu, sigma = arrays([-1, -2, -4, -5], [-2, -2, -2, -2], [1, 0.5, 2, 1])
    # z = [1, 0, -1] (last left out); int(3 * 0.5) = 1 lowest: -1 -> score 1.
    assert min_k_plus_plus_score(logprob, mu, sigma, 0.5) == pytest.approx(1.0)
    # sigma 0 is floored at 1e-3 (variance 1e-6): z = 0.5 / 1e-3 = 500 -> score -500.
    logprob, mu, sigma = arrays([-1, -2], [-1.5, 0], [0, 1])
    assert min_k_plus_plus_score(logprob, mu, sigma, 0.4) == pytest.approx(-500.0, rel=1e-5)


def test_exact_memorization_share_of_greedy_hits_without_the_last_token():
    assert exact_memorization(np.array([True, False, True, True, False])) == pytest.approx(0.75)
    assert math.isnan(exact_memorization(np.array([True])))


def test_extraction_strength_first_all_correct_suffix():
    assert extraction_strength(np.array([False, True, True, False])) == pytest.approx(1 - 1 / 3)  # k = 1 of 3
    assert extraction_strength(np.array([True, True, True, False])) == pytest.approx(1.0)  # k = 0
    # No correct suffix: open-unlearning's loop stops at k = n - 1, so 1/n, not 0.
    assert extraction_strength(np.array([True, True, False, True])) == pytest.approx(1 / 3)
    assert extraction_strength(np.array([True])) == 0.0  # no token left
    em, es = memorization(TokenStats(arrays([-1, -1, -1]), arrays([False, True, True], dtype=bool)))
    assert em.tolist() == [0.5] and es.tolist() == [0.5]


def hand_stats():
    # Dyadic numbers, so equal means are equal whatever the order of summation.
    member = TokenStats(arrays([-0.125, -0.25, -0.375], [-0.5, -0.375, -0.625]),
                        arrays([1, 1, 1], [1, 0, 1], dtype=bool))
    nonmember = TokenStats(arrays([-2, -3, -1], [-0.375, -0.25, -0.125]), arrays([0, 0, 0], [1, 1, 0], dtype=bool))
    return member, nonmember


def test_mia_aucs_hand_worked():
    member, nonmember = hand_stats()
    # LOSS: members [0.25, 0.5], non-members [2.0, 0.25]: 2.0 beats both (2), 0.25 ties 0.25 (0.5) -> 2.5 / 4.
    # Reference (members' reference losses [0.125, 0.125], non-members' [1.0, 0.375]): members [0.125, 0.375],
    # non-members [1.0, -0.125]: 1.0 beats both, -0.125 none -> 0.5. GradNorm: [1, 2] vs [3, 0.5] -> 0.5.
    ref_member = TokenStats(arrays([-0.125], [-0.125]), arrays([1], [1], dtype=bool))
    ref_nonmember = TokenStats(arrays([-1.0], [-0.375]), arrays([1], [1], dtype=bool))
    aucs = mia_aucs(member, nonmember, k=0.4, reference_member=ref_member, reference_nonmember=ref_nonmember,
                    gradnorm=(np.array([1.0, 2.0]), np.array([3.0, 0.5])))
    assert aucs["loss"] == pytest.approx(0.625)
    assert aucs["reference"] == pytest.approx(0.5)
    assert aucs["gradnorm"] == pytest.approx(0.5)
    # Min-K% (k=0.4, last token out, one token): members [0.25, 0.5], non-members [3.0, 0.375]: 3 beats both,
    # 0.375 beats 0.25 -> 3 / 4.
    assert aucs["min_k"] == pytest.approx(0.75)
    assert aucs["zlib"] is None and aucs["min_k_plus_plus"] is None  # no texts, no vocabulary statistics
    assert list(aucs) == list(MIA_ATTACKS)
    only = mia_aucs(member, nonmember, attacks=("loss",), member_texts=["a", "b"], nonmember_texts=["c", "d"])
    assert list(only) == ["loss"]


def test_attack_scores_zlib_divides_by_each_texts_compressed_length():
    member, _ = hand_stats()
    scores = attack_scores(member, texts=["aaaa", "hello hello hello"], attacks=("zlib",))
    np.testing.assert_allclose(scores["zlib"], [0.25 / 12, 0.5 / 16], rtol=1e-6)


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def test_scored_text_decodes_the_labels(tokenizer):
    example = tokenize_qa(tokenizer, PromptFormat("plain"), QA[0]["question"], QA[0]["answer"], 64)
    assert scored_text(tokenizer, example) == " " + QA[0]["answer"]  # EOS skipped


def direct_gradnorm(model, example, p):
    """open-unlearning's GradNormAttack on one example: zero_grad, backward, mean of per-tensor p-norms."""
    model.zero_grad()
    ids = torch.tensor([example.input_ids])
    log_p = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    labels = torch.tensor(example.labels[1:])
    positions = (labels != -100).nonzero().squeeze(-1)[:-1]
    loss = -log_p[positions, labels[positions]].mean()
    loss.backward()
    norms = torch.stack([q.grad.norm(p) for q in model.parameters() if q.grad is not None])
    model.zero_grad(set_to_none=True)
    return norms.mean().item()


@pytest.mark.parametrize("p", [2, 1, float("inf")])
def test_gradnorm_matches_a_direct_backward_and_leaves_the_model_as_it_was(tokenizer, p):
    model = tiny_model(tokenizer, seed=3).eval()
    examples = [tokenize_qa(tokenizer, PromptFormat("plain"), r["question"], r["answer"], 64) for r in QA[:3]]
    expected = [direct_gradnorm(model, e, p) for e in examples]
    frozen = model.model.embed_tokens.weight
    frozen.requires_grad_(False)  # as under LoRA: still part of "the parameters", restored afterwards
    with torch.no_grad():  # as in an evaluation: gradnorm turns gradients back on for itself
        scores = gradnorm_scores(model, examples, p=p)
    assert not frozen.requires_grad  # restored
    frozen.requires_grad_(True)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    assert all(q.grad is None for q in model.parameters())
    assert len(set(np.round(scores, 6))) == 3


def test_gradnorm_refuses_other_norms_and_inference_mode(tokenizer):
    model = tiny_model(tokenizer)
    example = tokenize_qa(tokenizer, PromptFormat("plain"), "q?", "a.", 32)
    with pytest.raises(ValueError, match="p must be"):
        gradnorm_scores(model, [example], p=3)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="inference_mode"):
        gradnorm_scores(model, [example])
