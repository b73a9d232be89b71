"""Checkpoints and saved models are written atomically: an interrupted write never replaces good data."""

import os

import lightning as L
import pytest
import torch

from tests.helpers import QA, tiny_model, tiny_tokenizer
from unlearn.callbacks.checkpointing import LastCheckpoint
from unlearn.models.saving import save_pretrained_atomic
from unlearn.training.checkpoints import LAST, AtomicCheckpointIO
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.losses import build_loss
from unlearn.training.module import UnlearningModule


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("disk full")  # stands in for any failure half-way through a write


def test_checkpoint_is_staged_beside_the_target_and_renamed(tmp_path, monkeypatch):
    renames = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda src, dst: (renames.append((src, dst)), real_replace(src, dst)))
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, tmp_path / "ckpt" / LAST)
    (src, dst), = renames
    assert os.path.dirname(src) == os.path.dirname(dst) == str(tmp_path / "ckpt")  # same filesystem: atomic
    assert AtomicCheckpointIO().load_checkpoint(dst)["step"] == 1


def test_failed_write_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(tmp_path):
    io, path = AtomicCheckpointIO(), tmp_path / LAST
    io.save_checkpoint({"step": 1}, path)
    good = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"step": 2, "bad": Unpicklable()}, path)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == [LAST]


def test_saved_model_is_safetensors_and_never_overwritten(tmp_path):
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    save_pretrained_atomic(model, tokenizer, tmp_path / "model")
    names = {p.name for p in (tmp_path / "model").iterdir()}
    assert "model.safetensors" in names and not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    with pytest.raises(FileExistsError, match="never overwritten"):
        save_pretrained_atomic(model, tokenizer, tmp_path / "model")


def test_interrupted_model_save_leaves_no_model_folder(tmp_path, monkeypatch):
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    real = type(model).save_pretrained

    def crash_half_way(self, folder, **kwargs):
        real(self, folder, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(model), "save_pretrained", crash_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_pretrained_atomic(model, tokenizer, tmp_path / "model")
    assert not (tmp_path / "model").exists()  # the temporary folder is removed; nothing is left
    monkeypatch.setattr(type(model), "save_pretrained", real)
    save_pretrained_atomic(model, tokenizer, tmp_path / "model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_last_checkpoint_is_one_file_rewritten_every_n_steps_and_at_epoch_end(tmp_path, one_thread):
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    saved = []

    class Record(AtomicCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            saved.append(checkpoint["global_step"])
            super().save_checkpoint(checkpoint, path, storage_options)

    module = UnlearningModule(tiny_model(tokenizer), build_loss("ga"), lr=1e-3, warmup_epochs=0.0)
    dm = UnlearningDataModule(QA[:6], QA[6:], [], tokenizer, batch_size=2, uses_retain=False)  # 3 steps an epoch
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, plugins=[Record()], callbacks=[LastCheckpoint(tmp_path, 2)])
    (tmp_path / f".{LAST}.12345.partial").write_bytes(b"half a checkpoint")  # from a run killed mid-write
    trainer.fit(module, datamodule=dm)
    assert saved == [2, 3, 4, 6, 6]  # steps 2 and 4, epoch ends 3 and 6 (step 6 twice: mid-epoch and end state)
    assert [p.name for p in tmp_path.iterdir()] == [LAST]


def test_no_checkpoint_is_written_mid_accumulation_at_the_start(tmp_path, one_thread):
    # With two batches a step, the first batch ends at global step 0 with half a step's gradients:
    # saving there would record a state an uninterrupted run never has.
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    saved = []

    class Record(AtomicCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            saved.append(checkpoint["global_step"])
            super().save_checkpoint(checkpoint, path, storage_options)

    module = UnlearningModule(tiny_model(tokenizer), build_loss("ga"), lr=1e-3, warmup_epochs=0.0)
    dm = UnlearningDataModule(QA[:6], QA[6:], [], tokenizer, batch_size=2, uses_retain=False)  # 3 batches an epoch
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, accumulate_grad_batches=2, plugins=[Record()],
                        callbacks=[LastCheckpoint(tmp_path, 1)])
    trainer.fit(module, datamodule=dm)
    assert saved == [1, 2, 2, 3, 4, 4]  # every step once it is complete, and each epoch end; never step 0
