"""RMU: the masked activation MSE by hand, the steering vector, parameter selection, and training.

Training checks that only the chosen parameters move, that the optimiser holds only them (and a
run resumes), and that the reference's hidden states (resident model, LoRA with adapters off) stay
those of the starting model.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn

from tests.helpers import QA, tiny_model, tiny_tokenizer
from tests.test_losses import FORGET, RETAIN, assert_close, llama_split, tiny_llama
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.errors import ConfigError
from unlearn.losses import build_loss
from unlearn.losses.activations import select_parameters, steering_vector
from unlearn.losses.rmu import masked_activation_mse
from unlearn.models.lora import apply_lora
from unlearn.reference.references import AdapterReference, CachedReference, ModelReference
from unlearn.reference.setup import resolve_reference_mode
from unlearn.training.module import UnlearningModule


class HiddenPolicy(nn.Module):
    """One 'decoder layer' (the identity) over a 1-dimensional embedding: token 0 -> 0, 1 -> 1, 2 -> 4."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding.from_pretrained(torch.tensor([[0.0], [1.0], [4.0]]), freeze=False)
        self.model = nn.Module()
        self.model.layers = nn.ModuleList([nn.Identity()])

    def forward(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.model.layers[0](self.embed(input_ids)))


class ZeroHidden:
    def hidden_states(self, inputs, layer):
        return torch.zeros(*inputs["input_ids"].shape, 1)


def test_masked_activation_mse_by_hand() -> None:
    """Row 0, both positions scored: mean_d sq = [1, 2] -> 3 / 2. Row 1, position 1 only: (0 + 4)/2 = 2.

    Mean over rows 1.75 (F.mse_loss over everything would give (1+1+4+0+25+25+0+4)/8 = 7.5).
    """
    hidden = torch.tensor([[[1.0, 1.0], [2.0, 0.0]], [[5.0, 5.0], [0.0, 2.0]]])
    labels = torch.tensor([[3, 4], [-100, 4]])
    assert_close(masked_activation_mse(hidden, torch.zeros(2), labels), 1.75)


def test_steering_vector_is_a_fixed_scaled_uniform_direction() -> None:
    u = steering_vector(16, 2.5, seed=7)
    assert torch.equal(u, steering_vector(16, 2.5, seed=7)) and not torch.equal(u, steering_vector(16, 2.5, seed=8))
    assert_close(u.norm(), 2.5)
    assert (u >= 0).all()
    drawn = torch.rand(16, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(u, drawn / drawn.norm() * 2.5)


def test_rmu_loss_by_hand() -> None:
    """D = 1, so u = 1 and the target is c = 2.

    forget: row 0 scores tokens 1, 2 (h = 1, 4): ((1−2)² + (4−2)²)/2 = 2.5; row 1 token 2: 4. Mean 3.25.
    retain against zeros: row 0 scores tokens 0, 2 (h = 0, 4): 16/2 = 8; row 1 token 0: 0. Mean 4.
    loss = 1 · 3.25 + α · 4 with α = 0.5.
    """
    loss = build_loss("rmu", layer=0, steering_coeff=2.0, alpha=0.5)
    out = loss(HiddenPolicy(), {"forget": FORGET, "retain": RETAIN}, ZeroHidden())
    assert_close(out.forget_loss, 3.25)
    assert_close(out.retain_loss, 2.0)
    assert_close(out.loss, 5.25)
    assert (loss.needs_reference_hidden_states, loss.uses_retain, loss.needs_reference_logits) == (True, True, False)


def test_parameter_selection() -> None:
    model = tiny_llama()  # 2 decoder layers
    assert select_parameters(model, 1, [0, 1], ["mlp.down_proj.weight"]) == [
        "model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"]
    assert build_loss("rmu", layer=1).trainable_parameters(model) == [
        "model.layers.0.mlp.down_proj.weight", "model.layers.1.mlp.down_proj.weight"]  # layers max(0, l-2)..l
    everything = set(build_loss("rmu", layer=0, trainable_params="all").trainable_parameters(model))
    assert "model.embed_tokens.weight" in everything and "model.layers.0.self_attn.q_proj.weight" in everything
    assert not {n for n in everything if n.startswith(("model.layers.1.", "model.norm", "lm_head"))}
    with pytest.raises(ConfigError, match=r"loss.layer=7: .* decoder layers 0-1"):
        build_loss("rmu").trainable_parameters(model)
    with pytest.raises(ConfigError, match=r"mlp.nope.weight.*mlp.down_proj.weight"):
        build_loss("rmu", layer=1, trainable_params=["mlp.nope.weight"]).trainable_parameters(model)


def test_under_lora_the_chosen_modules_adapters_train() -> None:
    policy = apply_lora(tiny_llama(), r=2, alpha=4, dropout=0.0, target_modules="all-linear")
    names = build_loss("rmu", layer=1, trainable_layers=[1]).trainable_parameters(policy)
    assert names and all("layers.1.mlp.down_proj.lora_" in n for n in names)
    lora_q = apply_lora(tiny_llama(), r=2, alpha=4, dropout=0.0, target_modules=["q_proj"])
    with pytest.raises(ConfigError, match="target_modules"):
        build_loss("rmu", layer=1).trainable_parameters(lora_q)


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def _fit(module, dm, steps, ckpt_path=None):
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm, ckpt_path=ckpt_path)
    return trainer


@pytest.mark.parametrize(("hparams", "moved"), [
    ({"layer": 1, "trainable_layers": [0, 1]}, {"model.layers.0.mlp.down_proj.weight",
                                                "model.layers.1.mlp.down_proj.weight"}),
    ({"layer": 0, "trainable_params": "all"}, None),
])
def test_only_the_chosen_parameters_train_and_the_reference_stays(tokenizer, one_thread, hparams, moved, tmp_path):
    torch.manual_seed(0)
    policy = tiny_model(tokenizer)
    loss = build_loss("rmu", steering_coeff=4.0, alpha=1.0, **hparams)
    chosen = set(loss.trainable_parameters(policy))
    moved = chosen if moved is None else moved
    assert chosen == moved
    reference = ModelReference(copy.deepcopy(policy))
    ref_before = {k: v.clone() for k, v in reference.model.state_dict().items()}
    before = {k: v.detach().clone() for k, v in policy.named_parameters()}
    module = UnlearningModule(policy, loss, reference, lr=1e-2, warmup_epochs=0.0)
    dm = UnlearningDataModule(QA[:8], QA[8:], [], tokenizer, batch_size=4, uses_retain=True, uses_idk=False)
    trainer = _fit(module, dm, 3)
    changed = {k for k, v in policy.named_parameters() if not torch.equal(v, before[k])}
    assert changed == moved
    assert all(torch.equal(v, reference.model.state_dict()[k]) for k, v in ref_before.items())
    optimised = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    assert optimised == {id(p) for n, p in policy.named_parameters() if n in moved}
    # A resumed run rebuilds the same selection, so the optimiser state fits and training continues.
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    resumed_policy = tiny_model(tokenizer)
    resumed = UnlearningModule(resumed_policy, build_loss("rmu", steering_coeff=4.0, alpha=1.0, **hparams),
                               ModelReference(copy.deepcopy(resumed_policy)), lr=1e-2, warmup_epochs=0.0)
    resumed_trainer = _fit(resumed, dm, 4, ckpt_path=tmp_path / "last.ckpt")
    assert resumed_trainer.global_step == 4
    assert {n for n, p in resumed_policy.named_parameters() if p.requires_grad} == moved


def test_references_serve_the_starting_models_hidden_states() -> None:
    base = tiny_llama()
    inputs = llama_split(seed=3)
    expected = base(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                    output_hidden_states=True).hidden_states[1]  # the output of decoder layer 0
    resident = ModelReference(copy.deepcopy(base))
    got = resident.hidden_states(inputs, 0)
    assert not got.requires_grad
    torch.testing.assert_close(got, expected)

    policy = apply_lora(copy.deepcopy(base), r=2, alpha=4, dropout=0.0, target_modules="all-linear")
    with torch.no_grad():
        for name, param in policy.named_parameters():
            if "lora_B" in name:
                param.normal_()  # adapters that change the network
    moved = policy(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                   output_hidden_states=True).hidden_states[1]
    assert not torch.allclose(moved, expected)
    policy.train()
    torch.testing.assert_close(AdapterReference(policy).hidden_states(inputs, 0), expected)
    assert policy.training  # the reference pass runs in eval mode and restores the policy's mode
    with pytest.raises(RuntimeError, match="hidden states"):
        CachedReference({"forget": []}, 0).hidden_states(inputs, 0)


def test_reference_mode_for_rmu() -> None:
    loss = build_loss("rmu")
    assert resolve_reference_mode("auto", loss) == "model"
    assert resolve_reference_mode("auto", loss, lora=True) == "adapter"
    assert resolve_reference_mode("auto", loss, lora=True, strategy="fsdp") == "adapter"
    with pytest.raises(ConfigError, match="cannot serve RMU: it reads the reference's hidden states"):
        resolve_reference_mode("cache", loss)
    with pytest.raises(ConfigError, match="hidden states at a decoder layer.*model.lora.enabled=true"):
        resolve_reference_mode("auto", loss, strategy="fsdp")


def test_rmu_needs_a_reference_and_a_retain_batch() -> None:
    loss = build_loss("rmu", layer=0)
    with pytest.raises(ValueError, match="rmu needs a reference"):
        loss(HiddenPolicy(), {"forget": FORGET, "retain": RETAIN}, None)
    with pytest.raises(ValueError, match="rmu needs batch\\['retain'\\]"):
        loss(HiddenPolicy(), {"forget": FORGET}, ZeroHidden())
