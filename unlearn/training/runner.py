"""The Lightning ``Trainer`` of a ``fit`` run, and running it so that every way it can stop says how to continue.

A collective that times out or loses a peer, and a SIGTERM that finds this process blocked in
one (:class:`~unlearn.training.distributed.SigtermWatchdog`), end with the run folder, its last
checkpoint and the exact ``--resume`` command; so does a SIGTERM that Lightning handles after the
current batch.
"""

from __future__ import annotations

import logging
import signal
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException

from unlearn.config.schema import OptimConfig, TrainerConfig
from unlearn.errors import CollectiveError, DiskFullError, RunInterrupted, RunStoppedByUser
from unlearn.training.checkpoints import AtomicCheckpointIO
from unlearn.training.distributed import SigtermWatchdog, is_collective_failure
from unlearn.training.resume import resume_command, resume_hint

log = logging.getLogger(__name__)


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


@contextmanager
def ctrl_c_stops_after_the_batch(trainer: L.Trainer):
    """A first Ctrl-C (SIGINT) is handled like SIGTERM: stop after the current batch and save its state.

    Yields a dict whose ``"signals"`` counts the Ctrl-Cs. A second one restores Python's default
    (``KeyboardInterrupt`` at once: Lightning then stops without saving, as the state may be half-updated).
    """
    seen = {"signals": 0}
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def on_sigint(signum, frame):
        seen["signals"] += 1
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C stops at once
        log.warning("Ctrl-C: stopping after the current batch and saving its state (press Ctrl-C again to stop at "
                    "once, keeping the previous checkpoint).")
        connector = trainer._signal_connector  # the SIGTERM path: forwards to launched ranks, then sets the flag
        notify = getattr(connector, "_sigterm_notifier_fn", None)
        if notify is not None:
            notify(signum, frame)
        connector.received_sigterm = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def train(trainer: L.Trainer, module, datamodule, checkpoint: Path | None, run_dir: Path, timeout_s: float) -> None:
    """``trainer.fit`` from ``checkpoint`` (or the start), with the ways it can stop turned into messages.

    Raises:
        RunInterrupted: SIGTERM, after the state of the last finished batch was saved.
        RunStoppedByUser: Ctrl-C (SIGINT), handled like SIGTERM; a second Ctrl-C stops without saving.
        DiskFullError: a checkpoint did not fit on its device (the previous one is intact).
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
            with SigtermWatchdog(stuck_message, children), ctrl_c_stops_after_the_batch(trainer) as ctrl_c:
                trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True)
        except SIGTERMException as err:
            if ctrl_c["signals"]:
                raise RunStoppedByUser(f"stopped by Ctrl-C (SIGINT) after the last finished batch, whose state is "
                                       f"saved. {resume_hint(run_dir)}") from err
            raise RunInterrupted(f"stopped by SIGTERM after the last finished batch, whose state is saved. "
                                 f"{resume_hint(run_dir)}") from err
        except SystemExit as err:  # Lightning's answer to KeyboardInterrupt (a second Ctrl-C): sys.exit(1)
            if not trainer.interrupted:
                raise
            raise RunStoppedByUser(f"stopped at once by a second Ctrl-C (SIGINT), in the middle of a batch, so "
                                   f"nothing more was saved. {resume_hint(run_dir)}") from err
        except DiskFullError as err:
            raise DiskFullError(f"{err} Free space and resume with:\n  {resume_command(run_dir)}") from err
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
