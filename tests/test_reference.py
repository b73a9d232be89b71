"""Reference modes: the log-prob cache equals the resident reference, and training agrees step by step."""

import copy

import lightning as L
import pytest
import torch

from unlearn.errors import ConfigError
from unlearn.config.loading import load_config
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.losses import build_loss
from unlearn.training.module import UnlearningModule
from unlearn.reference.references import CachedReference, ModelReference, compute_sequence_logps
from unlearn.reference.setup import resolve_reference_mode
from tests.helpers import build_reference_from, QA, tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def _datamodule(tokenizer, uses_idk=False):
    return UnlearningDataModule(QA[:10], QA[10:], ["I don't know.", "No idea at all."], tokenizer, batch_size=4,
                                uses_retain=True, uses_idk=uses_idk)


class LossRecorder(L.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].item())


def _train(policy, loss, reference, dm, steps=6):
    recorder = LossRecorder()
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[recorder])
    trainer.fit(UnlearningModule(policy, loss, reference, lr=5e-3, warmup_epochs=0.0), datamodule=dm)
    return recorder.losses


def test_cached_logps_equal_the_resident_reference(tokenizer):
    model = tiny_model(tokenizer)
    dm = _datamodule(tokenizer, uses_idk=True)
    examples = {"forget": dm.forget.examples, "idk": dm.idk.examples}
    table = compute_sequence_logps(model, examples, tokenizer.pad_token_id, batch_size=3, device="cpu")
    resident = ModelReference(copy.deepcopy(model))
    batch = next(iter(dm.train_dataloader()))
    for split in ("forget", "idk"):
        cached = CachedReference(examples, tokenizer.pad_token_id)
        cached.table = table
        torch.testing.assert_close(cached.sequence_logps(batch[split], split),
                                   resident.sequence_logps(batch[split], split), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["npo", "npo_rt", "dpo"])
def test_training_losses_agree_step_by_step(tokenizer, name, tmp_path):
    base = tiny_model(tokenizer)
    dm = _datamodule(tokenizer, uses_idk=name == "dpo")
    cfg = load_config([], [f"run.cache_dir={tmp_path}", "reference.batch_size=3"])
    loss = build_loss(name)

    resident_policy = copy.deepcopy(base)
    resident = _train(resident_policy, loss, ModelReference(copy.deepcopy(base)), dm)
    cached_policy = copy.deepcopy(base)
    reference = build_reference_from(cfg, loss, "tiny", dm, load_reference_model=lambda: pytest.fail("loaded a copy"))
    assert isinstance(reference, CachedReference)
    cached = _train(cached_policy, loss, reference, dm)

    assert len(cached) == len(resident) == 6
    torch.testing.assert_close(torch.tensor(cached), torch.tensor(resident), rtol=1e-4, atol=1e-5)
    for p, q in zip(cached_policy.parameters(), resident_policy.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-3, atol=1e-5)


def test_cache_is_written_once_and_reused(tokenizer, tmp_path, monkeypatch):
    cfg = load_config([], [f"run.cache_dir={tmp_path}"])
    loss = build_loss("npo")
    dm = _datamodule(tokenizer)
    first = build_reference_from(cfg, loss, "tiny", dm, load_reference_model=None)
    _train(tiny_model(tokenizer), loss, first, dm, steps=1)
    assert first.path.is_file()

    import unlearn.reference.references as reference_module

    monkeypatch.setattr(reference_module, "compute_sequence_logps", lambda *a, **k: pytest.fail("recomputed"))
    second = build_reference_from(cfg, loss, "tiny", dm, load_reference_model=None)
    assert second.path == first.path
    _train(tiny_model(tokenizer), loss, second, dm, steps=1)
    torch.testing.assert_close(second.table["forget"], first.table["forget"])


def test_a_cache_of_other_data_is_not_trusted(tokenizer, tmp_path):
    cfg = load_config([], [f"run.cache_dir={tmp_path}"])
    loss = build_loss("npo")
    a = build_reference_from(cfg, loss, "tiny", _datamodule(tokenizer), None)
    other = UnlearningDataModule(QA[2:12], QA[12:], [], tokenizer, uses_retain=False)
    b = build_reference_from(cfg, loss, "tiny", other, None)
    assert a.fingerprint != b.fingerprint
    a.table = {"forget": torch.zeros(10)}
    a.save()
    b.path = a.path  # even at the same path, a mismatching fingerprint is ignored
    assert not b.load()


def test_auto_mode_picks_by_what_the_loss_reads():
    assert resolve_reference_mode("auto", build_loss("npo")) == "cache"
    assert resolve_reference_mode("auto", build_loss("npo_rt")) == "cache"
    assert resolve_reference_mode("auto", build_loss("dpo")) == "cache"
    assert resolve_reference_mode("auto", build_loss("npo_kl")) == "model"
    assert resolve_reference_mode("auto", build_loss("kl")) == "model"
    assert resolve_reference_mode("auto", build_loss("npo"), lora=True) == "adapter"
    for name in ("ga", "grad_diff", "idk", "simnpo"):
        assert resolve_reference_mode("auto", build_loss(name)) is None


def test_impossible_combinations_say_why():
    with pytest.raises(ConfigError, match="full next-token distribution"):
        resolve_reference_mode("cache", build_loss("npo_kl"))
    with pytest.raises(ConfigError, match="LoRA"):
        resolve_reference_mode("adapter", build_loss("npo"))
    with pytest.raises(ConfigError, match="auto, cache, model, adapter"):
        resolve_reference_mode("disk", build_loss("npo"))


def test_cache_refuses_to_fill_from_an_updated_policy(tokenizer):
    dm = _datamodule(tokenizer)
    reference = CachedReference({"forget": dm.forget.examples}, tokenizer.pad_token_id)

    class Updated:
        global_step = 5

    with pytest.raises(RuntimeError, match="no longer the reference"):
        reference.setup(Updated())


def test_cache_travels_in_the_checkpoint_and_never_refills_after_updates(tokenizer, tmp_path):
    cfg = load_config([], [f"run.cache_dir={tmp_path}"])
    dm = _datamodule(tokenizer)
    reference = build_reference_from(cfg, build_loss("npo"), "tiny", dm, None)
    reference.table = {"forget": torch.arange(10.0)}
    restored = build_reference_from(cfg, build_loss("npo"), "tiny", dm, None)
    restored.load_state_dict(reference.state_dict())
    torch.testing.assert_close(restored.table["forget"], torch.arange(10.0))

    class Resuming:
        global_step = 0  # Lightning restores the step only after on_fit_start

        class trainer:
            ckpt_path = "last.ckpt"

    empty = build_reference_from(cfg, build_loss("npo"), "tiny", dm, None)
    with pytest.raises(RuntimeError, match="no longer the reference"):
        empty.setup(Resuming())
    other = build_reference_from(cfg, build_loss("npo"), "tiny", _datamodule(tokenizer, uses_idk=True), None)
    other.fingerprint = "different"
    with pytest.raises(RuntimeError, match="another model or data set"):
        other.load_state_dict(reference.state_dict())
