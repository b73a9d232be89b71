"""UNDIAL, WGA, SatImp, CE-U and PDU against values worked out by hand (RMU: tests/test_rmu.py).

They use the lookup-table policy of tests/test_losses.py over a vocabulary of 3:

    token 0 -> probabilities (1/3, 1/3, 1/3); token 1 -> (1/2, 1/4, 1/4); token 2 -> (1/4, 1/4, 1/2)

FORGET's label tokens (after the causal shift): row 0 predicts 1 from token 0 (p = 1/3) and 2 from
token 1 (p = 1/4); row 1 predicts 0 from token 1 (p = 1/2). RETAIN's token-mean NLL is ln24 / 3.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.test_losses import BATCH, FORGET, REFERENCE, TABLE, TablePolicy, assert_close, run, split
from unlearn.losses import build_loss
from unlearn.losses.ce_u import drop_first_answer_tokens
from unlearn.losses.undial import undial_term

LN2, LN3, LN24 = math.log(2), math.log(3), math.log(24)


def test_wga_weights_each_token_by_its_likelihood() -> None:
    """β = 1: −mean(p·NLL) = −(ln3/3 + ln4/4 + ln2/2) / 3 = −(ln3/3 + ln2) / 3; plus 2 · ln24/3 retain NLL.

    β = 0 is plain gradient ascent (the token mean, −ln24/3).
    """
    out = run("wga", beta=1.0, c_rt=2.0)
    assert_close(out.forget_loss, -(LN3 / 3 + LN2) / 3)
    assert_close(out.loss, -(LN3 / 3 + LN2) / 3 + 2 * LN24 / 3)
    assert_close(run("wga", beta=0.0, retain="none").loss, -LN24 / 3)
    assert_close(run("wga", beta=1.0, c_forget=3.0, retain="none").loss, -(LN3 / 3 + LN2))


def test_satimp_weights_by_saturation_and_importance() -> None:
    """β₁ = β₂ = 1: weights p(1 − p) = [2/9, 3/16, 1/4] -> −(2ln3/9 + 3·2ln2/16 + ln2/4) / 3.

    β₁ = 2, β₂ = 0: weights p² = [1/9, 1/16, 1/4] -> −(ln3/9 + 3ln2/8) / 3, WGA's value at β = 2.
    The default c_forget 0.1 scales the forget term.
    """
    out = run("satimp", beta1=1.0, beta2=1.0, c_forget=1.0, retain="none")
    assert_close(out.loss, -(2 * LN3 / 9 + 5 * LN2 / 8) / 3)
    assert_close(run("satimp", beta1=2.0, beta2=0.0, c_forget=1.0, retain="none").loss, -(LN3 / 9 + 3 * LN2 / 8) / 3)
    assert_close(run("wga", beta=2.0, retain="none").loss, -(LN3 / 9 + 3 * LN2 / 8) / 3)
    default = run("satimp", beta1=1.0, beta2=1.0)
    assert_close(default.forget_loss, -0.1 * (2 * LN3 / 9 + 5 * LN2 / 8) / 3)
    assert_close(default.retain_loss, LN24 / 3)


def test_ce_u_targets_the_distribution_without_the_true_token() -> None:
    """Targets: uniform logits, label 1 -> (1/2, 0, 1/2): CE ln3. Token 1's (ln2, 0, 0) with label 2 ->
    (2/3, 1/3, 0): CE 2/3·ln2 + 1/3·ln4 = 4ln2/3; with label 0 -> (0, 1/2, 1/2): CE ln4.

    n = 0: mean of the three. n = 1 (default): each row's first label token is left out, only 4ln2/3 stays.
    n = 2: nothing is scored: 0.
    """
    assert_close(run("ce_u", ignore_first_n_answer_tokens=0).loss, (LN3 + 10 * LN2 / 3) / 3)
    out = run("ce_u")
    assert_close(out.loss, 4 * LN2 / 3)
    assert out.retain_loss is None and out.extras["scored_tokens"].item() == 1
    assert_close(run("ce_u", ignore_first_n_answer_tokens=2).loss, 0.0)
    labels = torch.tensor([[-100, 5, 6, 7], [-100, -100, 8, -100]])
    assert drop_first_answer_tokens(labels, 1).tolist() == [[-100, -100, 6, 7], [-100, -100, -100, -100]]


def test_ce_u_gradient_lowers_only_the_true_token() -> None:
    """∂L/∂z = softmax(z) − q: at uniform logits with label 1, (1/3 − 1/2, 1/3, 1/3 − 1/2) / 1 position."""
    policy = TablePolicy(TABLE)
    batch = {"forget": split([[0, 0]], [[-100, 1]])}
    build_loss("ce_u", ignore_first_n_answer_tokens=0)(policy, batch, None).loss.backward()
    torch.testing.assert_close(policy.table.grad[0], torch.tensor([-1 / 6, 1 / 3, -1 / 6]))


def test_undial_distils_towards_the_adjusted_teacher_at_every_position() -> None:
    """Teacher logits 0 (uniform); β = ln2 lowers the true token to weight 1/2: targets like (2/5, 2/5, 1/5).

    row 0: t0 token 0 (uniform student) CE ln3; t1 token 1, label 2: 2/5·ln2 + 2/5·ln4 + 1/5·ln4 = 8ln2/5.
    row 1: t0 token 1, label 0: 1/5·ln2 + 4/5·ln4 = 9ln2/5; t1 token 2, label −100: uniform target, 5ln2/3.
    Mean over all four positions, padding and prompt included as in the reference.
    """
    out = run("undial", beta=LN2)
    assert_close(out.loss, (LN3 + 76 * LN2 / 15) / 4)
    assert out.retain_loss is None
    with_retain = run("undial", beta=LN2, c_forget=2.0, retain="nll", c_rt=1.0)
    assert_close(with_retain.loss, (LN3 + 76 * LN2 / 15) / 2 + LN24 / 3)


def test_undial_lowers_token_v_minus_100_where_the_label_is_ignored() -> None:
    """The reference's one-hot at index −100 wraps to token V − 100 (here 1 of 101).

    One ignored position; teacher 0, β = ln2: target 1/201 on token 1, 2/201 elsewhere. Student logits 0 but
    ln2 on token 1: log q = ln2 − ln102 there, −ln102 elsewhere. CE = ln102 − ln2/201 (not ln102 − ln2/101).
    """
    logits = torch.zeros(1, 2, 101)
    logits[0, 0, 1] = LN2
    labels = torch.tensor([[-100, -100]])
    assert_close(undial_term(logits, torch.zeros(1, 2, 101), labels, LN2), math.log(102) - LN2 / 201)


def test_undial_gradient_vanishes_at_the_adjusted_teacher() -> None:
    """A student already equal to the adjusted teacher gets no gradient: the loss is bounded below."""
    teacher = torch.randn(2, 4, 6)
    labels = torch.tensor([[-100, 2, 3, 1], [-100, -100, 5, 0]])
    shifted = teacher.clone()
    shifted[:, :-1] -= 3.0 * torch.nn.functional.one_hot(labels[:, 1:].clamp(min=0), 6) * (labels[:, 1:, None] >= 0)
    student = shifted.clone().requires_grad_(True)
    undial_term(student, teacher, labels, 3.0).backward()
    torch.testing.assert_close(student.grad, torch.zeros_like(student.grad), atol=1e-7, rtol=0)


def test_pdu_loss_is_the_lagrangian() -> None:
    """Logit margin at the unshifted label positions (tokens 1, 2, 2): (ln2 − ln2/3)² = 4ln²2/9 each.

    c_rt = λ = 2, ε = 0.5: loss = 4ln²2/9 + 2 · (ln24/3 − 0.5). (The shifted positions would give 8ln²2/27.)
    """
    out = run("pdu", c_rt=2.0, retain_loss_eps=0.5)
    assert_close(out.forget_loss, 4 * LN2 ** 2 / 9)
    assert_close(out.retain_loss, 2 * (LN24 / 3 - 0.5))
    assert_close(out.extras["retain_gap"], LN24 / 3 - 0.5)
    assert_close(out.extras["retain_preference"], 2.0)


def test_pdu_dual_ascent_after_warm_up() -> None:
    """λ <- max(0, λ + η · gap) from epoch dual_warmup_epochs on; the loss used the λ from before."""
    pdu = build_loss("pdu", c_rt=2.0, retain_loss_eps=0.5, dual_step_size=0.5, dual_warmup_epochs=1)
    same = lambda value: value  # noqa: E731 (one process: the mean over ranks is the value)
    out = pdu(TablePolicy(TABLE), BATCH, REFERENCE)
    pdu.update(out, 0, same)
    assert pdu.retain_preference == 2.0  # warm-up epoch
    pdu.update(out, 1, same)
    assert pdu.retain_preference == pytest.approx(2.0 + 0.5 * (LN24 / 3 - 0.5))
    assert_close(out.extras["retain_preference"], 2.0)
    assert pdu.step_dual(-100.0) == 0.0  # never negative
    fixed = build_loss("pdu", c_rt=2.0, dual_step_size=0.0, dual_warmup_epochs=0)
    fixed.update(out, 3, lambda value: pytest.fail("no dual step, no all-reduce"))
    assert fixed.retain_preference == 2.0


def test_pdu_dual_variable_is_the_same_on_every_rank() -> None:
    """Two ranks with different retain batches step λ from the all-reduced gap, so they stay equal."""
    ranks = [build_loss("pdu", c_rt=1.0, retain_loss_eps=1.0, dual_step_size=1.0, dual_warmup_epochs=0)
             for _ in range(2)]
    # Token-mean retain NLLs (ln2 + ln3)/2 and ln4: gaps ln6/2 − 1 and ln4 − 1, mean ln96/4 − 1.
    retains = [split([[1, 0, 2]], [[-100, 0, 1]]), split([[0, 1, 0]], [[-100, -100, 2]])]
    outs = [pdu(TablePolicy(TABLE), {"forget": FORGET, "retain": retain}, None) for pdu, retain in zip(ranks, retains)]
    gaps = torch.stack([out.extras["retain_gap"] for out in outs])
    assert gaps[0] != gaps[1]
    for pdu, out in zip(ranks, outs):
        pdu.update(out, 0, lambda value: gaps.mean())  # what an all-reduce of the two returns on each rank
    assert ranks[0].retain_preference == ranks[1].retain_preference == pytest.approx(math.log(96) / 4)


def test_pdu_state_round_trips() -> None:
    pdu = build_loss("pdu", c_rt=3.0)
    pdu.step_dual(1.5)
    restored = build_loss("pdu", c_rt=3.0)
    restored.load_state_dict(pdu.state_dict())
    assert restored.retain_preference == pdu.retain_preference == 4.5
    with pytest.raises(RuntimeError, match="dual variable"):
        restored.load_state_dict({"retain_preference": float("nan")})
    assert build_loss("wga").state_dict() == {}


@pytest.mark.parametrize(("name", "logits", "retain"), [
    ("undial", True, False), ("wga", False, True), ("satimp", False, True), ("ce_u", False, False),
    ("pdu", False, True),
])
def test_flags(name: str, logits: bool, retain: bool) -> None:
    loss = build_loss(name)
    assert (loss.needs_reference_logps, loss.needs_reference_logits, loss.needs_reference_hidden_states,
            loss.uses_retain, loss.uses_idk) == (False, logits, False, retain, False)
    if name != "ce_u":
        kl = build_loss(name, retain="kl")
        assert kl.needs_reference_logits and kl.uses_retain and kl.retain_term.kl_mask == "all"


def test_retain_kl_is_open_unlearnings_every_position_kl() -> None:
    """WGA with retain KL against uniform reference logits: every position / B·T (K/2, tests/test_losses.py)."""
    k = math.log(32 / 27) / 3
    out = run("wga", beta=1.0, retain="kl", c_kl=1.0)
    assert_close(out.retain_loss, k / 2)


def test_missing_reference_fails_legibly() -> None:
    with pytest.raises(ValueError, match="undial needs a reference"):
        build_loss("undial")(TablePolicy(TABLE), BATCH, None)
