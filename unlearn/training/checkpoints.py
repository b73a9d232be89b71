"""Checkpoints and saved models that a crash cannot corrupt, and the state that makes a resume exact.

Every file or folder is written under a temporary name in the same folder and renamed when
complete: a rename within one filesystem is atomic, so a run killed at any instant leaves either
the previous file or the new one, never half of one. Lightning's own checkpoint writer stages the
file in the system temporary folder and then *copies* it over when that folder is on another
filesystem (common on clusters), which is not atomic; :class:`AtomicCheckpointIO` replaces it.

The checkpoint callbacks (``LastCheckpoint``, ``RNGState``) are in ``callbacks/checkpointing.py``.
A checkpoint holds the policy's weights and the optimiser, scheduler, loop and callback states,
never the frozen reference (it is rebuilt from the starting model). It is loaded with
``torch.load(weights_only=True)``, which cannot run code embedded in a tampered file.
"""

from __future__ import annotations

import errno
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from unlearn.errors import DiskFullError, RunFolderError, UnlearnError
from unlearn.files import atomic_write
from unlearn.models.safe_load import torch_load
from unlearn.names import CHECKPOINT_DIR, LAST  # noqa: F401  (part of this module's interface)

# The key, under a checkpoint's "callbacks", of the resolved config the run trains with
# (callbacks/run_config.py writes it; a resume compares against it).
RUN_CONFIG_STATE = "RunConfig"
# What to do with a checkpoint a safe load refuses (unlearn.models.safe_load): this project never writes one.
REFUSED_CHECKPOINT = ("This project's checkpoints hold tensors, numbers and strings only, so this one was "
                      "not written by it or was altered. Delete it and start the run again with another "
                      "run.name (or put back the checkpoint the run wrote).")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file beside the target, then renamed over it.

    Loading always uses ``weights_only=True``: a checkpoint holds tensors, numbers and strings only.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}.")
        # Temporary name `.last.ckpt.<host>.<pid>.<random>.partial` (LastCheckpoint sweeps leftovers).
        try:
            atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))
        except (OSError, RuntimeError) as err:  # torch's zip writer reports a full disk as a RuntimeError
            if not is_disk_full(err, Path(path).parent):
                raise
            kept = (f"the last checkpoint {path} is intact" if Path(path).is_file() else
                    "no checkpoint had been written yet")
            raise DiskFullError(f"no space left on the device holding {path}; {kept} (the partial write was "
                                "removed).") from err

    @override
    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        del weights_only  # never anything but True
        if not Path(path).is_file():
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        try:
            return torch_load(path, REFUSED_CHECKPOINT, map_location=map_location or (lambda storage, loc: storage))
        except (OSError, RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as err:
            if isinstance(err, UnlearnError):  # refused as unsafe: its own message
                raise
            raise damaged_checkpoint(path, err) from err


def is_disk_full(err: BaseException, folder: Path) -> bool:
    """Whether a failed write ``err`` means the device holding ``folder`` is full (or the quota is used up)."""
    if isinstance(err, OSError):
        return err.errno in (errno.ENOSPC, errno.EDQUOT)
    try:  # torch's writer says only "file write failed": look at the device itself
        return "write" in str(err) and shutil.disk_usage(folder).free < 16 * 2**20
    except OSError:
        return False


def damaged_checkpoint(path: str | Path, err: BaseException) -> RunFolderError:
    """The error for a checkpoint that cannot be read: what it means and the two ways on; nothing is deleted."""
    path = Path(path)
    detail = (str(err).strip().splitlines() or [""])[0][:200]
    return RunFolderError(
        f"cannot read the checkpoint {path}: it is damaged (truncated, e.g. by a full disk or a copy cut short, or "
        f"not a checkpoint; {type(err).__name__}: {detail}), so the run cannot continue from it. Nothing was "
        f"changed. Start again with another run.name, or delete {path} and repeat the command with --resume to "
        f"restart run {path.parent.parent.name} from the beginning in its folder.")


def last_checkpoint(run_dir: Path) -> Path | None:
    """``<run>/checkpoints/last.ckpt`` when it exists (temporary files of an interrupted write are ignored)."""
    path = Path(run_dir) / CHECKPOINT_DIR / LAST
    return path if path.is_file() else None


def checkpoint_config(path: str | Path) -> str | None:
    """The resolved config (YAML text) that the run of checkpoint ``path`` trained with; None when it holds none.

    The file is memory-mapped, so its tensors are not read: this is cheap even for a large model.

    Raises:
        UnsafeFileError: the file holds objects a safe load refuses (the message says what to do).
        OSError, RuntimeError, ...: the file cannot be read as a checkpoint.
    """
    try:
        state = torch_load(path, REFUSED_CHECKPOINT, map_location="cpu", mmap=True)
    except RuntimeError:  # a checkpoint in torch's legacy (non-zip) format cannot be memory-mapped
        state = torch_load(path, REFUSED_CHECKPOINT, map_location="cpu")
    record = (state.get("callbacks") or {}).get(RUN_CONFIG_STATE) if isinstance(state, dict) else None
    text = record.get("config") if isinstance(record, dict) else None
    return text if isinstance(text, str) else None
