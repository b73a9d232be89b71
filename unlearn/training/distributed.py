"""Running one ``fit`` over many processes: the shared run folder and strategy-specific checks.

Lightning's DDP launcher starts ranks 1..N-1 by re-running the command line, so every rank runs
``fit(cfg)`` from the top. Only the process that started the run (global rank 0) may choose,
check and create the run folder: the others would find the folder it just made and refuse it,
and a default run name holds a timestamp that would differ per process. Rank 0 therefore
exports the resolved folder in :data:`RUN_DIR_ENV` before the trainer launches the others, which
inherit its environment; a launched rank reuses that folder without the existence check and
writes nothing there (Lightning and the callbacks write from global rank 0 only). Ranks started
by an outside launcher (``torchrun``, SLURM, another node) do not share rank 0's environment,
and so need ``run.name`` to agree on the folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from unlearn.errors import ConfigError

log = logging.getLogger(__name__)
RUN_DIR_ENV = "UNLEARN_RUN_DIR"
# Set by Lightning's launcher (LOCAL_RANK, NODE_RANK), torchrun (RANK, GROUP_RANK) or SLURM.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID")
SHARDED_STRATEGIES = ("fsdp", "deepspeed")


def is_launched_rank() -> bool:
    """True in a process that a launcher started as a rank other than global rank 0."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return True
    return False


def launched_run_dir(name: str | None, output_dir: str) -> Path | None:
    """The run folder of a launched rank, or None in the process that starts the run.

    Raises:
        ConfigError: a rank started by an outside launcher, with no ``run.name`` to find the folder by.
    """
    if not is_launched_rank():
        return None
    shared = os.environ.get(RUN_DIR_ENV)
    if shared:
        return Path(shared)
    if name is None:
        raise ConfigError("This process is a non-zero rank started by an outside launcher (torchrun, SLURM or "
                         "another node), and the default run name holds a timestamp that differs between "
                         "processes. Give every process the same run.name=...")
    return Path(output_dir).expanduser() / name


def share_run_dir(run_dir: Path) -> None:
    """Export the run folder to the ranks the trainer is about to launch."""
    os.environ[RUN_DIR_ENV] = str(Path(run_dir).resolve())


def strategy_name(strategy: str) -> str:
    """The strategy's family: ``deepspeed_stage_3_offload`` -> ``deepspeed``, ``fsdp`` -> ``fsdp``."""
    lowered = str(strategy).lower()
    for family in (*SHARDED_STRATEGIES, "ddp"):
        if lowered.startswith(family):
            return family
    return lowered


def check_strategy(strategy: str) -> None:
    """DeepSpeed is an optional extra: fail before any slow work when it is asked for and missing.

    Raises:
        ConfigError: naming the extra to install.
    """
    if strategy_name(strategy) == "fsdp":
        log.info("trainer.strategy=%s: evaluation during training gathers the whole policy on every device while "
                 "it runs; if that does not fit, set eval.enabled=false and evaluate the saved model with "
                 "`python -m unlearn eval` (docs/distributed.md).", strategy)
    if strategy_name(strategy) == "deepspeed":
        log.warning("trainer.strategy=%s has never been run with this project: saving and evaluation under "
                    "ZeRO-3 gather through deepspeed.zero.GatheredParameters, untested (docs/distributed.md). "
                    "trainer.strategy=ddp and fsdp are the tested paths.", strategy)
        try:
            import deepspeed  # noqa: F401
        except ImportError as err:
            raise ConfigError("trainer.strategy=deepspeed needs the DeepSpeed package: "
                              "pip install -e '.[deepspeed]' (or choose trainer.strategy=fsdp).") from err


# What torch's process-group backends say when a collective cannot finish: gloo's "Timed out waiting
# ...ms" and "Connection closed by peer" (the other rank has died), NCCL's watchdog timeout.
COLLECTIVE_FAILURE = re.compile(r"timed out|timeout|connection closed by peer|connection reset by peer|"
                                r"broken pipe|NCCL", re.IGNORECASE)
# After SIGTERM, a main thread that has not moved for this long is blocked in one call (a collective
# that waits for a rank that will never join) and cannot reach Lightning's own SIGTERM handling.
STUCK_AFTER_SIGTERM_S = 15.0


def is_collective_failure(err: BaseException) -> bool:
    """True for the errors torch raises when a collective operation times out or loses a peer."""
    import torch.distributed as dist

    if isinstance(err, getattr(dist, "DistError", ())):
        return True
    return isinstance(err, RuntimeError) and bool(COLLECTIVE_FAILURE.search(str(err)))


def is_multi_process(devices, num_nodes: int) -> bool:
    """Whether ``trainer.devices`` and ``trainer.num_nodes`` ask for more than one process."""
    if num_nodes > 1:
        return True
    if isinstance(devices, (list, tuple)):
        return len(devices) > 1
    text = str(devices).strip()
    if "," in text:
        return len([d for d in text.split(",") if d.strip()]) > 1
    return text.lstrip("-").isdigit() and int(text) > 1


class SigtermWatchdog:
    """Ends a process that got SIGTERM while blocked in a collective, instead of letting it wait forever.

    Python runs signal handlers in the main thread between bytecodes, so a process blocked in a C
    call (a gloo or NCCL collective waiting for a rank that has died or is stuck) never reaches
    Lightning's SIGTERM handling, and only SIGKILL stops it. The C-level handler still writes the
    signal number to the wakeup file descriptor at once; a daemon thread reads it, and if the main
    thread then stays in one place for ``patience_s`` seconds, it stops the processes this one
    launched, prints ``message`` and exits with 143 (128 + SIGTERM). A main thread that keeps
    moving finishes the batch and saves its checkpoint through Lightning as usual.

    Use as a context manager in the main thread, around ``trainer.fit``.
    """

    def __init__(self, message: Callable[[], str], children: Callable[[], list] = list,
                 patience_s: float = STUCK_AFTER_SIGTERM_S):
        self.message, self.children, self.patience_s = message, children, patience_s
        self._reader = self._writer = None
        self._previous_fd = -1

    def __enter__(self) -> SigtermWatchdog:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach only the main thread's handlers; nothing to watch
        self._reader, self._writer = socket.socketpair()
        self._writer.setblocking(False)
        self._previous_fd = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        threading.Thread(target=self._watch, name="unlearn-sigterm-watchdog", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        if self._writer is None:
            return
        signal.set_wakeup_fd(self._previous_fd)
        self._writer.close()  # the reader sees end-of-file and the thread ends
        self._writer = None

    def _watch(self) -> None:
        try:
            while True:
                data = self._reader.recv(64)
                if not data:
                    return
                if signal.SIGTERM in data:
                    break
        except OSError:
            return
        main = threading.main_thread().ident
        place, since = None, time.monotonic()
        while True:
            frame = sys._current_frames().get(main)
            if frame is None:
                return
            now = (id(frame), frame.f_lasti)
            if now != place:
                place, since = now, time.monotonic()
            elif time.monotonic() - since >= self.patience_s:
                break
            time.sleep(0.25)
        for child in self.children():
            with contextlib.suppress(Exception):
                child.kill()
        print(f"error: {self.message()}", file=sys.stderr, flush=True)
        os._exit(143)
