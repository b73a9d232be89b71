"""The unlearning LightningModule: every strategy trains the policy and leaves the reference alone."""

import copy

import lightning as L
import pytest
import torch

from unlearn.data.datamodule import UnlearningDataModule
from unlearn.losses import LOSSES, build_loss
from unlearn.training.module import NonFiniteLossError, UnlearningModule
from unlearn.reference.references import ModelReference
from tests.helpers import QA, tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def _trainer(steps=3):
    return L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False)


def _setup(tokenizer, name, **hparams):
    torch.manual_seed(0)
    policy = tiny_model(tokenizer)
    loss = build_loss(name, **hparams)
    needs_ref = loss.needs_reference_logps or loss.needs_reference_logits
    reference = ModelReference(copy.deepcopy(policy)) if needs_ref else None
    module = UnlearningModule(policy, loss, reference, lr=1e-2, warmup_epochs=0.0)
    dm = UnlearningDataModule(QA[:8], QA[8:], ["I don't know.", "No idea."], tokenizer, batch_size=4,
                              uses_retain=loss.uses_retain, uses_idk=loss.uses_idk)
    return module, dm, reference


# RMU moves only the parameters it chooses (tests/test_rmu.py).
@pytest.mark.parametrize("name", sorted(set(LOSSES) - {"rmu"}))
def test_every_strategy_moves_every_policy_parameter_and_not_the_reference(tokenizer, name):
    module, dm, reference = _setup(tokenizer, name)
    before = {k: v.clone() for k, v in module.policy.state_dict().items()}
    ref_before = {k: v.clone() for k, v in reference.model.state_dict().items()} if reference else {}
    _trainer().fit(module, datamodule=dm)
    after = module.policy.state_dict()
    unchanged = [k for k in before if torch.equal(before[k], after[k]) and before[k].is_floating_point()]
    assert not unchanged, f"{name}: parameters did not move: {unchanged}"
    if reference:
        assert all(torch.equal(v, reference.model.state_dict()[k]) for k, v in ref_before.items())
        assert not reference.model.training and not any(p.requires_grad for p in reference.model.parameters())


def test_reference_is_outside_checkpoint_and_optimizer(tokenizer):
    module, dm, reference = _setup(tokenizer, "npo_kl")
    trainer = _trainer(1)
    trainer.fit(module, datamodule=dm)
    assert all(k.startswith("policy.") for k in module.state_dict())
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in reference.model.parameters()}
    assert optimised == {id(p) for p in module.policy.parameters()}


def test_policy_trains_in_train_mode(tokenizer):
    module, dm, _ = _setup(tokenizer, "ga")
    module.policy.eval()
    module = UnlearningModule(module.policy, module.loss)
    assert module.policy.training


def test_missing_reference_is_an_error(tokenizer):
    with pytest.raises(ValueError, match="needs a reference"):
        UnlearningModule(tiny_model(tokenizer), build_loss("npo"), reference=None)


def test_nan_loss_stops_with_the_step_named(tokenizer):
    module, dm, _ = _setup(tokenizer, "ga")
    with torch.no_grad():
        module.policy.model.embed_tokens.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match="global step 0"):
        _trainer().fit(module, datamodule=dm)


def test_logs_npo_extras(tokenizer):
    module, dm, _ = _setup(tokenizer, "npo_rt")
    trainer = _trainer(2)
    trainer.fit(module, datamodule=dm)
    logged = trainer.callback_metrics
    for key in ("train/loss", "train/forget_loss", "train/retain_loss", "train/log_ratio", "train/sample_weight", "train/lr"):
        assert key in logged, key
    assert 0 < logged["train/sample_weight"] <= 2
