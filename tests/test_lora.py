"""LoRA: no second copy of the weights, and the adapter-off reference is the untouched base model."""

import copy

import lightning as L
import pytest
import torch
from transformers import AutoModelForCausalLM

from unlearn.config.loading import load_config
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.models.saving import save_model
from unlearn.losses import build_loss
from unlearn.models.lora import apply_lora
from unlearn.training.module import UnlearningModule
from unlearn.reference.references import AdapterReference, ModelReference

from tests.helpers import build_reference_from, QA, tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def _lora_policy(tokenizer):
    base = tiny_model(tokenizer)
    untouched = copy.deepcopy(base)
    return apply_lora(base, r=4, alpha=8, dropout=0.0, target_modules="all-linear"), untouched


def _train(policy, reference, dm, steps=4):
    L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(
        UnlearningModule(policy, build_loss("npo_kl"), reference, lr=5e-2, warmup_epochs=0.0), datamodule=dm)


def test_lora_reference_is_the_same_network_not_a_copy(tokenizer, tmp_path):
    policy, untouched = _lora_policy(tokenizer)
    dm = UnlearningDataModule(QA[:8], QA[8:], [], tokenizer, batch_size=4)
    cfg = load_config([], [f"run.cache_dir={tmp_path}"])
    reference = build_reference_from(cfg, build_loss("npo_kl"), "tiny", dm,
                                load_reference_model=lambda: pytest.fail("a second copy was loaded"), policy=policy)
    assert isinstance(reference, AdapterReference) and reference.policy is policy
    base_params = sum(p.numel() for p in untouched.parameters())
    trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    # Every tensor the run holds is the base model's or an adapter's: nothing more.
    assert sum(p.numel() for p in policy.parameters()) == base_params + trainable
    assert trainable > 0
    assert all("lora_" in name for name, p in policy.named_parameters() if p.requires_grad)


def test_adapter_off_logps_equal_the_base_model_before_and_after_training(tokenizer):
    policy, untouched = _lora_policy(tokenizer)
    dm = UnlearningDataModule(QA[:8], QA[8:], [], tokenizer, batch_size=4)
    reference = AdapterReference(policy)
    base = ModelReference(untouched)
    batch = next(iter(dm.train_dataloader()))
    torch.testing.assert_close(reference.sequence_logps(batch["forget"], "forget"),
                               base.sequence_logps(batch["forget"], "forget"))
    before = {k: v.clone() for k, v in policy.named_parameters() if v.requires_grad}
    _train(policy, reference, dm)
    assert any(not torch.equal(before[k], v) for k, v in policy.named_parameters() if v.requires_grad)
    torch.testing.assert_close(reference.sequence_logps(batch["forget"], "forget"),
                               base.sequence_logps(batch["forget"], "forget"))
    torch.testing.assert_close(reference.logits(batch["retain"]), base.logits(batch["retain"]))
    assert policy.training  # the reference pass restores the policy's mode


def test_saved_merged_model_reproduces_the_trained_policy(tokenizer, tmp_path):
    policy, _ = _lora_policy(tokenizer)
    dm = UnlearningDataModule(QA[:8], QA[8:], [], tokenizer, batch_size=4)
    _train(policy, AdapterReference(policy), dm)
    save_model(policy, tokenizer, tmp_path / "merged", merge_lora=True)
    save_model(policy, tokenizer, tmp_path / "adapters", merge_lora=False)
    assert (tmp_path / "adapters" / "adapter_config.json").is_file()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    ids = torch.tensor([[1, 5, 9, 14, 20]])
    policy.eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, policy(input_ids=ids).logits, rtol=1e-4, atol=1e-4)
