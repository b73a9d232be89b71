"""Membership inference and memorisation inside TOFU's evaluation: forget answers against holdout ones."""

import math

import numpy as np
import pytest

from tests.helpers import QA
from tests.test_evaluation import scrambled_model, tiny_splits
from unlearn.evaluation import TofuEvaluator
from unlearn.evaluation import membership as membership_module
from unlearn.evaluation.mia import mia_auc
from unlearn.evaluation.results import EvalResult
from unlearn.names import EXACT_MEMORIZATION, EXTRACTION_STRENGTH, MIA_ATTACKS, mia_key

pytestmark = pytest.mark.usefixtures("one_thread")
HOLDOUT = [dict(r, answer=r["answer"] + " Indeed.") for r in QA[11:16]]


@pytest.fixture(scope="module")
def tokenizer():
    from tests.helpers import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def evaluator(tokenizer, holdout=HOLDOUT, attacks=MIA_ATTACKS):
    return TofuEvaluator(tokenizer, tiny_splits(), max_length=64, max_new_tokens=3, batch_size=4, holdout=holdout,
                         mia_attacks=attacks)


def test_every_attack_gives_an_auc_and_memorisation_is_a_share(tokenizer):
    result = evaluator(tokenizer)(scrambled_model(tokenizer))
    summary = result.compare_with_retain(None).summary()
    for attack in MIA_ATTACKS:
        value = summary[mia_key(attack)]
        assert (value is None) if attack == "reference" else 0 <= value <= 1
    assert 0 <= summary[EXACT_MEMORIZATION] <= 1 and 0 < summary[EXTRACTION_STRENGTH] <= 1
    assert any("reference" in line and "retain" in line for line in result.unavailable())
    # The LOSS attack's AUC is open-unlearning's: members labelled 0, ranked by their mean NLL.
    m = result.membership
    assert summary[mia_key("loss")] == pytest.approx(mia_auc(m.member["loss"], m.nonmember["loss"]))
    assert len(m.member["loss"]) == 5 and len(m.nonmember["loss"]) == 5


def test_reference_attack_against_the_model_itself_cannot_tell_members_apart(tokenizer):
    result = evaluator(tokenizer)(scrambled_model(tokenizer))
    retain = EvalResult.from_dict(result.to_dict())  # the same numbers, as read back from the store
    assert result.compare_with_retain(retain).summary()[mia_key("reference")] == 0.5  # every score is 0: all ties


def test_reference_attack_reads_the_retain_models_losses(tokenizer):
    target = evaluator(tokenizer)(scrambled_model(tokenizer, seed=1))
    retain = evaluator(tokenizer)(scrambled_model(tokenizer, seed=2))
    expected = mia_auc(target.membership.member["loss"] - retain.membership.member["loss"],
                       target.membership.nonmember["loss"] - retain.membership.nonmember["loss"])
    assert target.compare_with_retain(retain).summary()[mia_key("reference")] == pytest.approx(expected)


def test_without_holdout_texts_only_memorisation_is_reported_and_the_reason_is_said(tokenizer):
    result = evaluator(tokenizer, holdout=None)(scrambled_model(tokenizer)).compare_with_retain(None)
    summary = result.summary()
    assert all(summary[mia_key(a)] is None for a in MIA_ATTACKS)
    assert summary[EXACT_MEMORIZATION] is not None
    assert any("holdout" in line for line in result.unavailable())


def test_membership_off_leaves_the_tofu_numbers_alone(tokenizer):
    model = scrambled_model(tokenizer)
    plain = evaluator(tokenizer, attacks=())(model).summary()
    assert mia_key("loss") not in plain and EXACT_MEMORIZATION not in plain
    full = evaluator(tokenizer)(model).summary()
    assert {k: full[k] for k in plain} == plain


def test_round_trip_through_the_stored_form_keeps_every_number(tokenizer):
    result = evaluator(tokenizer)(scrambled_model(tokenizer)).compare_with_retain(None)
    again = EvalResult.from_dict(result.to_dict()).compare_with_retain(None)
    for key, value in result.summary().items():
        assert again.summary()[key] == value or (value is not None and math.isnan(value))


class Captured(Exception):
    pass


def test_two_ranks_give_what_one_process_gives(tokenizer, monkeypatch):
    """Each rank scores its share and they gather: rank 0 and rank 1 together equal one process."""
    model = scrambled_model(tokenizer)
    probe = evaluator(tokenizer).membership
    single = probe(model, 0, 1)
    parts = []

    def capture(part, world_size):
        parts.append(part)
        raise Captured

    monkeypatch.setattr(membership_module, "gather_objects", capture)
    with pytest.raises(Captured):
        probe(model, 1, 2)
    monkeypatch.setattr(membership_module, "gather_objects", lambda part, world_size: part + parts[0])
    both = probe(model, 0, 2)
    for name in single.member:
        np.testing.assert_allclose(both.member[name], single.member[name], rtol=1e-5)
        np.testing.assert_allclose(both.nonmember[name], single.nonmember[name], rtol=1e-5)
    np.testing.assert_allclose(both.exact_memorization, single.exact_memorization)
    assert len(parts[0]) < 10  # rank 1 scored only its share


def test_gradnorm_is_skipped_with_a_reason_when_the_weights_are_sharded(tokenizer):
    result = evaluator(tokenizer)(scrambled_model(tokenizer), gradients=False)
    assert result.summary()[mia_key("gradnorm")] is None
    assert any("gradnorm" in line and "sharded" in line for line in result.unavailable())
