"""The Lightning ``Trainer`` of a ``fit`` run, and running it so that every way it can stop says how to continue.

A collective that times out or loses a peer, and a SIGTERM that finds this process blocked in
one (:class:`~unlearn.training.distributed.SigtermWatchdog`), end with the run folder, its last
checkpoint and the exact ``--resume`` command; so does a SIGTERM that Lightning handles after the
current batch.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from unlearn.config.schema import OptimConfig, TrainerConfig
from unlearn.errors import CollectiveError, RunInterrupted
from unlearn.training.checkpoints import AtomicCheckpointIO
from unlearn.training.distributed import SigtermWatchdog, is_collective_failure
from unlearn.training.resume import resume_hint


def build_trainer(settings: TrainerConfig, optim: OptimConfig, strategy, run_dir: Path, callbacks: list) -> L.Trainer:
    """The Trainer: TensorBoard in ``<run>/tensorboard``, atomic checkpoints, the given callbacks in order."""
    return L.Trainer(
        max_epochs=settings.max_epochs, accelerator=settings.accelerator, devices=settings.devices,
        num_nodes=settings.num_nodes, strategy=strategy, precision=settings.precision,
        accumulate_grad_batches=optim.accumulate_grad_batches, gradient_clip_val=optim.gradient_clip_val,
        log_every_n_steps=settings.log_every_n_steps, deterministic=settings.deterministic,
        enable_progress_bar=settings.enable_progress_bar, enable_checkpointing=True,
        logger=TensorBoardLogger(save_dir=str(run_dir), name="tensorboard", version=""),
        callbacks=callbacks, plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir))


def train(trainer: L.Trainer, module, datamodule, checkpoint: Path | None, run_dir: Path, timeout_s: float) -> None:
    """``trainer.fit`` from ``checkpoint`` (or the start), with the ways it can stop turned into messages.

    Raises:
        RunInterrupted: SIGTERM, after the state of the last finished batch was saved.
        CollectiveError: the processes of a multi-process run stopped waiting for each other.
    """
    def children() -> list:
        return list(getattr(trainer.strategy.launcher, "procs", None) or [])

    def stuck_message() -> str:
        return (f"stopped by SIGTERM while this process was waiting for the other processes of the run. "
                f"{resume_hint(run_dir)}")

    with warnings.catch_warnings():
        # Evaluation numbers are logged without a collective on purpose (callbacks/evaluation.py).
        warnings.filterwarnings("ignore", message=r".*self\.log\('(utility|forget)/.*sync_dist=True")
        try:
            with SigtermWatchdog(stuck_message, children):
                trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
        except SIGTERMException as err:
            raise RunInterrupted(f"stopped by SIGTERM after the last finished batch, whose state is saved. "
                                 f"{resume_hint(run_dir)}") from err
        except Exception as err:
            if trainer.world_size < 2 or not is_collective_failure(err):
                raise
            for child in children():  # ranks this process launched wait in the same broken collectives
                child.kill()
            text = str(err).strip()
            first_line = text.splitlines()[0][:300] if text else type(err).__name__
            raise CollectiveError(
                f"the processes of this run stopped waiting for each other: a collective operation did not "
                f"complete within trainer.collective_timeout_s={timeout_s:g} s, or another process of the run "
                f"ended (torch: {first_line}). Look for an error in the other processes' output first. "
                f"{resume_hint(run_dir)}") from err
