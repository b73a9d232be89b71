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

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from typing_extensions import override

from unlearn.files import atomic_write
from unlearn.names import CHECKPOINT_DIR, LAST  # noqa: F401  (part of this module's interface)

# The key, under a checkpoint's "callbacks", of the resolved config the run trains with
# (callbacks/run_config.py writes it; a resume compares against it).
RUN_CONFIG_STATE = "RunConfig"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints written to a temporary file beside the target, then renamed over it.

    Loading always uses ``weights_only=True``: a checkpoint holds tensors, numbers and strings only.
    """

    @override
    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options, got {storage_options!r}.")
        # Temporary name `.last.ckpt.<host>.<pid>.<random>.partial` (LastCheckpoint sweeps leftovers).
        atomic_write(path, lambda tmp: torch.save(checkpoint, tmp))

    @override
    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        del weights_only  # never anything but True
        if not Path(path).is_file():
            raise FileNotFoundError(f"Checkpoint file not found: {path}")
        return torch.load(path, map_location=map_location or (lambda storage, loc: storage), weights_only=True)


def last_checkpoint(run_dir: Path) -> Path | None:
    """``<run>/checkpoints/last.ckpt`` when it exists (temporary files of an interrupted write are ignored)."""
    path = Path(run_dir) / CHECKPOINT_DIR / LAST
    return path if path.is_file() else None


def checkpoint_config(path: str | Path) -> str | None:
    """The resolved config (YAML text) that the run of checkpoint ``path`` trained with; None when it holds none.

    The file is memory-mapped, so its tensors are not read: this is cheap even for a large model.

    Raises:
        OSError, RuntimeError, ...: the file cannot be read as a checkpoint.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # a checkpoint in torch's legacy (non-zip) format cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    record = (state.get("callbacks") or {}).get(RUN_CONFIG_STATE) if isinstance(state, dict) else None
    text = record.get("config") if isinstance(record, dict) else None
    return text if isinstance(text, str) else None
