"""The loss registry: each strategy's flags, hyperparameters, errors, and a few training steps of a tiny Llama.

The hand-worked loss values are in tests/test_losses.py, whose table policy and helpers these reuse.
"""

from __future__ import annotations

import copy

import pytest
import torch

from tests.test_losses import BATCH, TABLE, TablePolicy, llama_split, tiny_llama
from unlearn.losses import LOSSES, build_loss
from unlearn.reference.references import ModelReference


@pytest.mark.parametrize(
    ("name", "logps", "logits", "retain", "idk"),
    [
        ("ga", False, False, False, False),
        ("grad_diff", False, False, True, False),
        ("kl", False, True, True, False),
        ("idk", False, False, True, True),
        ("dpo", True, False, False, True),
        ("npo", True, False, False, False),
        ("npo_rt", True, False, True, False),
        ("npo_kl", True, True, True, False),
        ("simnpo", False, False, True, False),
    ],
)
def test_flags(name: str, logps: bool, logits: bool, retain: bool, idk: bool) -> None:
    loss = build_loss(name)
    assert (loss.needs_reference_logps, loss.needs_reference_logits, loss.uses_retain, loss.uses_idk) == (
        logps,
        logits,
        retain,
        idk,
    )


def test_simnpo_without_retain_reads_nothing_else() -> None:
    loss = build_loss("simnpo", retain="none")
    assert not (loss.uses_retain or loss.needs_reference_logps or loss.needs_reference_logits)
    assert loss.hparams()["retain"] == "none"


def test_hparams_round_trip() -> None:
    for name, cls in LOSSES.items():
        loss = build_loss(name)
        assert set(loss.hparams()) == set(cls.hparam_names())
        assert build_loss(name, **loss.hparams()).hparams() == loss.hparams()
    assert build_loss("npo_kl", beta=0.2, kl_mask="all").hparams() == {
        "beta": 0.2,
        "c_npo": 1.0,
        "c_kl": 1.0,
        "kl_mask": "all",
        "max_length": None,
    }


def test_unknown_loss_names_valid_ones_and_closest() -> None:
    with pytest.raises(ValueError, match=r"'grad_dif'.*'npo_rt'.*Did you mean 'grad_diff'"):
        build_loss("grad_dif")


def test_unknown_keyword_is_named() -> None:
    with pytest.raises(ValueError, match=r"'betta' for loss 'npo'.*\['beta'\].*Did you mean 'beta'"):
        build_loss("npo", betta=0.1)
    with pytest.raises(ValueError, match="'c_rt' for loss 'npo_kl'"):
        build_loss("npo_kl", c_rt=1.0)


@pytest.mark.parametrize(
    ("name", "hparams", "message"),
    [
        ("npo", {"beta": 0.0}, "beta must be > 0"),
        ("simnpo", {"beta": -1.0}, "beta must be > 0"),
        ("npo_rt", {"c_rt": -0.5}, "c_rt must be >= 0"),
        ("grad_diff", {"c_forget": -1}, "c_forget must be >= 0"),
        ("npo_kl", {"kl_mask": "prompt"}, "kl_mask must be one of"),
        ("dpo", {"retain": "kll"}, "retain must be one of"),
        ("npo", {"beta": "0.1"}, "beta must be a number"),
        ("npo", {"beta": float("nan")}, "beta must be finite"),
    ],
)
def test_invalid_values(name: str, hparams: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_loss(name, **hparams)


def test_missing_reference_fails_legibly() -> None:
    with pytest.raises(ValueError, match="needs a reference"):
        build_loss("npo")(TablePolicy(TABLE), BATCH, None)


# RMU trains only the parameters it chooses, at a layer this 2-layer model lacks by default: tests/test_rmu.py.
@pytest.mark.parametrize("name", sorted(set(LOSSES) - {"rmu"}))
def test_every_strategy_trains_tiny_llama(name: str) -> None:
    """Three AdamW steps move every policy parameter and leave the reference copy bit-equal.

    The batch holds only the splits the flags ask for, and the reference is given only when a flag
    asks for it, so a wrong flag fails here. Weight decay is off so that a parameter can only move
    through its gradient.
    """
    policy = tiny_llama()
    reference_model = copy.deepcopy(policy)
    snapshot = {key: value.clone() for key, value in reference_model.state_dict().items()}
    initial = {key: value.detach().clone() for key, value in policy.named_parameters()}
    loss_fn = build_loss(name)
    reference = ModelReference(reference_model)
    if not (loss_fn.needs_reference_logps or loss_fn.needs_reference_logits):
        reference = None
    batch = {"forget": llama_split(seed=10)}
    if loss_fn.uses_retain:
        batch["retain"] = llama_split(seed=11)
    if loss_fn.uses_idk:
        batch["idk"] = llama_split(seed=12)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(3):
        out = loss_fn(policy, batch, reference)
        assert torch.isfinite(out.loss)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    unchanged = [key for key, value in policy.named_parameters() if torch.equal(value, initial[key])]
    assert unchanged == []
    for key, value in reference_model.state_dict().items():
        assert torch.equal(value, snapshot[key]), key
