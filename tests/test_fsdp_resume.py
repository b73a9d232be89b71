"""Resuming where Lightning restores the checkpoint late (FSDP, DeepSpeed): the reference comes from the checkpoint.

Under those strategies ``restore_checkpoint_after_setup`` is true: the checkpoint is read only after
``on_fit_start``, where the reference log-prob cache is filled. A resumed run's policy has already
moved on, so the table must come back with the checkpoint, never be recomputed, and this must not
depend on the cache file in ``run.cache_dir`` still being there.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import SingleDeviceStrategy
from safetensors.torch import load_file

import unlearn.reference.references
from tests.helpers import QA, tiny_model, tiny_tokenizer
from tests.test_distributed import _env, _fit, _fit_command
from unlearn.callbacks.checkpointing import LastCheckpoint
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.losses import build_loss
from unlearn.reference.references import CachedReference
from unlearn.training.checkpoints import LAST, AtomicCheckpointIO
from unlearn.training.module import UnlearningModule


class LateRestore(SingleDeviceStrategy):
    """One CPU process that restores checkpoints after ``on_fit_start``, as FSDP and DeepSpeed do."""

    @property
    def restore_checkpoint_after_setup(self) -> bool:
        return True


def _run(tmp_path, resuming: bool, epochs: int, ckpt_path=None) -> CachedReference:
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token
    dm = UnlearningDataModule(QA[:4], QA[4:], [], tokenizer, batch_size=2, uses_retain=False)
    reference = CachedReference({"forget": dm.forget.examples}, tokenizer.pad_token_id, 4,
                                tmp_path / "reference.safetensors", "fingerprint", resuming=resuming)
    module = UnlearningModule(tiny_model(tokenizer, hidden_size=16, num_hidden_layers=1, intermediate_size=32),
                              build_loss("npo"), reference, lr=1e-2, warmup_epochs=0.0)
    L.Trainer(max_epochs=epochs, accelerator="cpu", strategy=LateRestore(torch.device("cpu")), logger=False,
              enable_progress_bar=False, enable_model_summary=False, plugins=[AtomicCheckpointIO()],
              callbacks=[LastCheckpoint(tmp_path)]).fit(module, datamodule=dm, ckpt_path=ckpt_path, weights_only=True)
    return reference


def test_late_restoring_strategy_takes_the_table_from_the_checkpoint_without_the_cache_file(
        tmp_path, monkeypatch, one_thread):
    first = _run(tmp_path, resuming=False, epochs=1)
    assert first.ready and (tmp_path / "reference.safetensors").is_file()
    (tmp_path / "reference.safetensors").unlink()

    def never(*args, **kwargs):
        raise AssertionError("a resumed run recomputed the reference from its updated policy")

    monkeypatch.setattr(unlearn.reference.references, "compute_sequence_logps", never)
    resumed = _run(tmp_path, resuming=True, epochs=2, ckpt_path=tmp_path / LAST)
    assert torch.equal(resumed.table["forget"], first.table["forget"])
    assert not (tmp_path / "reference.safetensors").exists()

    # A checkpoint without the table (and no cache file): a clear error once the checkpoint is restored.
    checkpoint = torch.load(tmp_path / LAST, weights_only=True)
    del checkpoint["reference"]
    torch.save(checkpoint, tmp_path / "bare.ckpt")
    with pytest.raises(RuntimeError, match="neither the run's checkpoint nor the cache file"):
        _run(tmp_path, resuming=True, epochs=3, ckpt_path=tmp_path / "bare.ckpt")


@pytest.mark.slow
def test_fsdp_run_killed_mid_training_resumes_without_its_reference_cache_file(tmp_path):
    # Under FSDP each checkpoint is gathered to one full file on rank 0 (state_dict_type="full"), with
    # the optimiser state and the reference log-probs; resuming reshards it. FSDP restores it after
    # on_fit_start, and the reference's table comes back then: the cache file in run.cache_dir is
    # deleted before the resume, and the resumed run neither needs nor rewrites it.
    fsdp = ("trainer.strategy=fsdp", "trainer.devices=2", "data.batch_size=2", "trainer.max_epochs=4",
            "run.checkpoint_every_n_steps=1")
    straight = _fit(tmp_path, "straight", *fsdp)
    checkpoint = tmp_path / "runs" / "killed" / "checkpoints" / "last.ckpt"

    def saved_step() -> int:
        try:  # written by a rename, but read while the next one may replace it
            return torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"]
        except (FileNotFoundError, RuntimeError, EOFError):
            return -1

    # Its own session, so that killing it kills both ranks (rank 1 is rank 0's child).
    proc = subprocess.Popen(_fit_command(tmp_path, "killed", *fsdp), cwd=tmp_path,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 240
    while proc.poll() is None and time.time() < deadline and saved_step() < 5:
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {err.decode()[-2000:]}"
    killed_at = saved_step()
    assert 5 <= killed_at < 8 and not (tmp_path / "runs" / "killed" / "model").exists()
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)["reference"]["table"]["forget"]
    cache = tmp_path / "cache" / "reference"
    assert list(cache.glob("*.safetensors"))
    shutil.rmtree(cache)

    resumed = _fit(tmp_path, "killed", *fsdp, "--resume")
    assert not cache.exists() or not list(cache.glob("*.safetensors")), "the resumed run recomputed the reference"
    one, two = (load_file(run / "model" / "model.safetensors") for run in (straight, resumed))
    assert one.keys() == two.keys()
    assert all(torch.equal(one[k], two[k]) for k in one), f"weights differ (killed at step {killed_at})"
    summaries = [json.loads((run / "summary.json").read_text()) for run in (straight, resumed)]
    assert summaries[0]["steps"] == summaries[1]["steps"] == 8
    assert [r["step"] for r in summaries[1]["evaluation"]["history"]] == [0, 2, 4, 6, 8]
    assert summaries[1]["resumed_from"].endswith("last.ckpt") and saved.shape == (8,)
