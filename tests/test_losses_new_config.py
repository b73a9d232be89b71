"""The six newer strategies through the configuration: their YAMLs, bad values, the reference each gets,
and PDU's dual variable across a checkpoint and a resumed run."""

from __future__ import annotations

import copy

import lightning as L
import pytest
import torch

from tests.helpers import QA, tiny_model, tiny_tokenizer
from tests.test_resume import Crash, StopAt
from unlearn.callbacks.checkpointing import LastCheckpoint, RNGState
from unlearn.config.loading import load_config
from unlearn.config.schema import LossConfig
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.errors import ConfigError
from unlearn.losses import build_loss, build_loss_from_config
from unlearn.reference.setup import resolve_reference_mode
from unlearn.training.checkpoints import LAST, AtomicCheckpointIO
from unlearn.training.module import UnlearningModule

NEW = ("undial", "wga", "satimp", "ce_u", "pdu", "rmu")


@pytest.mark.parametrize(("name", "expected"), [
    ("undial", {"beta": 10.0, "c_forget": 1.0, "retain": "none"}),
    ("wga", {"beta": 1.0, "c_forget": 1.0, "retain": "nll", "c_rt": 1.0}),
    ("satimp", {"beta1": 5.0, "beta2": 1.0, "c_forget": 0.1, "retain": "nll", "c_rt": 1.0}),
    ("ce_u", {"ignore_first_n_answer_tokens": 1}),
    ("pdu", {"c_forget": 1.0, "c_rt": 100.0, "retain_loss_eps": 0.3, "dual_step_size": 5.0, "dual_warmup_epochs": 5.0,
             "retain": "nll"}),
    ("rmu", {"layer": 7, "trainable_layers": None, "trainable_params": "all", "steering_coeff": 2.0, "alpha": 1.0,
             "c_forget": 1.0, "steering_seed": 42}),
])
def test_loss_group_holds_the_published_tofu_settings(name, expected):
    """`loss=<name>` gives open-unlearning's TOFU settings (the YAML comments say where each comes from)."""
    loss = build_loss_from_config(load_config([], [f"loss={name}"]).loss, max_length=128)
    assert {k: v for k, v in loss.hparams().items() if k in expected} == expected


@pytest.mark.parametrize(("overrides", "message"), [
    ({"name": "wga", "beta": -1.0}, r"loss.beta must be >= 0, got -1.0 \(loss.name=wga\)"),
    ({"name": "undial", "beta": 0.0}, r"loss.beta must be > 0"),
    ({"name": "satimp", "beta1": -2.0}, r"loss.beta1 must be >= 0"),
    ({"name": "satimp", "retain": "kll"}, r"loss.retain must be one of"),
    ({"name": "ce_u", "ignore_first_n_answer_tokens": -1}, r"loss.ignore_first_n_answer_tokens must be an integer >= 0"),
    ({"name": "pdu", "dual_step_size": -1.0}, r"loss.dual_step_size must be >= 0"),
    ({"name": "pdu", "retain": "none"}, r"loss.retain must be one of \['nll', 'kl'\]"),
    ({"name": "pdu", "retain_loss_eps": float("inf")}, r"loss.retain_loss_eps must be finite"),
    ({"name": "rmu", "steering_coeff": 0.0}, r"loss.steering_coeff must be > 0"),
    ({"name": "rmu", "alpha": -1.0}, r"loss.alpha must be >= 0"),
    ({"name": "rmu", "layer": -1}, r"loss.layer must be an integer >= 0"),
    ({"name": "rmu", "trainable_layers": [5, 8]}, r"loss.trainable_layers must all be <= layer=7: layer 8"),
    ({"name": "rmu", "trainable_params": "some"}, r"loss.trainable_params must be 'all' or a non-empty list"),
    ({"name": "rmu", "trainable_params": "all", "trainable_layers": [6, 7]}, r"loss.trainable_layers must be null"),
    ({"name": "wga", "beta1": 5.0}, r"unknown hyperparameter 'beta1' for loss 'wga'"),
    ({"name": "ce_u", "steering_coeff": 2.0}, r"unknown hyperparameter 'steering_coeff' for loss 'ce_u'"),
])
def test_bad_values_are_refused_with_the_key_named(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_loss_from_config(LossConfig(**overrides), max_length=128)


@pytest.mark.parametrize(("name", "hparams", "auto", "lora"), [
    ("undial", {}, "model", "adapter"),
    ("wga", {}, None, None),
    ("wga", {"retain": "kl"}, "model", "adapter"),
    ("satimp", {}, None, None),
    ("satimp", {"retain": "kl"}, "model", "adapter"),
    ("ce_u", {}, None, None),
    ("pdu", {}, None, None),
    ("pdu", {"retain": "kl"}, "model", "adapter"),
    ("rmu", {}, "model", "adapter"),
])
def test_auto_picks_the_cheapest_reference_that_serves(name, hparams, auto, lora):
    loss = build_loss(name, **hparams)
    assert resolve_reference_mode("auto", loss) == auto
    assert resolve_reference_mode("auto", loss, lora=True) == lora
    if auto == "model":
        with pytest.raises(ConfigError, match="cannot serve"):
            resolve_reference_mode("cache", loss)


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def _pdu_run(tokenizer, ckpt_dir, ckpt_path=None, stop=None):
    """tests/test_resume.py's run (3 epochs of 4 steps, dropout, the run's checkpoint callbacks) with PDU."""
    L.seed_everything(0, verbose=False)
    loss = build_loss("pdu", c_rt=1.0, retain_loss_eps=0.5, dual_step_size=0.5, dual_warmup_epochs=1)
    module = UnlearningModule(tiny_model(tokenizer, attention_dropout=0.3), loss, None, lr=1e-2, warmup_epochs=0.5)
    dm = UnlearningDataModule(QA[:8], QA[8:], [], tokenizer, batch_size=2, seed=3)
    trainer = L.Trainer(max_epochs=3, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, deterministic=True, plugins=[AtomicCheckpointIO()],
                        callbacks=[RNGState(), LastCheckpoint(ckpt_dir, 3), *([stop] if stop else [])])
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    return module, trainer


def test_pdu_dual_variable_survives_checkpoint_and_resume(tokenizer, one_thread, tmp_path):
    """Killed after step 7, resumed from the step-6 checkpoint: λ (and the weights) end as uninterrupted."""
    straight, _ = _pdu_run(tokenizer, tmp_path / "straight")
    with pytest.raises(Crash):
        _pdu_run(tokenizer, tmp_path, stop=StopAt(7, "crash"))
    checkpoint = torch.load(tmp_path / LAST, weights_only=True)
    assert checkpoint["global_step"] == 6 and set(checkpoint["loss_state"]) == {"retain_preference"}
    assert checkpoint["loss_state"]["retain_preference"] != 1.0  # epoch 1 has begun: λ moved
    resumed, trainer = _pdu_run(tokenizer, tmp_path, ckpt_path=tmp_path / LAST)
    assert trainer.global_step == 12
    assert resumed.loss.retain_preference == straight.loss.retain_preference != 1.0
    weights, expected = resumed.policy.state_dict(), straight.policy.state_dict()
    assert all(torch.equal(weights[k], expected[k]) for k in expected)
    assert "train/retain_preference" in trainer.callback_metrics


def test_new_strategies_are_registered():
    from unlearn.losses import LOSSES
    from unlearn.names import BETA_LOSSES, LOSS_NAMES

    assert LOSS_NAMES[-6:] == NEW and set(NEW) <= set(LOSSES)
    assert {"undial", "wga"} <= set(BETA_LOSSES) and not {"satimp", "ce_u", "pdu", "rmu"} & set(BETA_LOSSES)
    assert copy.copy(build_loss("rmu")).hparams()["trainable_params"] == ["mlp.down_proj.weight"]
