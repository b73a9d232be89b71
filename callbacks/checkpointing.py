"""The run's one checkpoint, and the random state that makes a resumed run exact.

Checkpoints are written through :class:`unlearn.training.checkpoints.AtomicCheckpointIO` (a
temporary file renamed over the old one), so a run killed at any instant keeps a whole one.
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from unlearn.training.checkpoints import LAST


class LastCheckpoint(Checkpoint):
    """Keeps one checkpoint, ``<dirpath>/last.ckpt``: rewritten at every epoch end and every N steps.

    The file is replaced, never added to, so disk use stays at one checkpoint. As a
    ``Checkpoint`` subclass, Lightning runs it after every other callback, so the states it saves
    include their updates for the same step. On SIGTERM (a scheduler's pre-emption notice)
    Lightning stops after the current batch and the state is saved then too, so a pre-empted run
    loses no steps.

    Args:
        dirpath: Folder for ``last.ckpt``.
        every_n_steps: Also save every this many optimiser steps; None saves at epoch ends only.
    """

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None):
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"every_n_steps must be >= 1 or None, got {every_n_steps}")
        self.path = Path(dirpath) / LAST
        self.every_n_steps = every_n_steps
        self._last_step_saved = -1

    @override
    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:  # left by a run killed while writing; never a complete checkpoint
            for stale in self.path.parent.glob(f".{self.path.name}.*.partial"):
                stale.unlink(missing_ok=True)

    @override
    def on_train_start(self, trainer, pl_module) -> None:
        # The state at this step is the start (or the checkpoint just resumed): never save it again
        # from the first micro-batch, which under gradient accumulation would be mid-step.
        self._last_step_saved = trainer.global_step

    def _save(self, trainer: L.Trainer) -> None:
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: the optimiser is needed to resume
        self._last_step_saved = trainer.global_step

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every_n_steps and step % self.every_n_steps == 0 and step != self._last_step_saved:
            self._save(trainer)

    @override
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._save(trainer)

    @override
    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException):
            return  # after an error the state may be bad; the last checkpoint stays as it was
        progress = trainer.fit_loop.epoch_loop.batch_progress
        if progress.current.completed % trainer.accumulate_grad_batches and not progress.is_last_batch:
            return  # half-way through gradient accumulation: those gradients cannot be checkpointed
        self._save(trainer)


class RNGState(L.Callback):
    """Saves the global random generators with each checkpoint and puts them back on resume.

    Dropout draws from these generators; without them a resumed run would train on different
    masks than an uninterrupted one. The state is restored just before the first resumed batch,
    the point at which it was captured in the original run (data order has its own seeded
    generators and draws nothing from them).
    """

    def __init__(self):
        self._pending: dict | None = None

    @override
    def state_dict(self) -> dict:
        state = {"python": list(random.getstate()), "torch": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = state_dict

    @override
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._pending is None:
            return
        state, self._pending = self._pending, None
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state["cuda"])
