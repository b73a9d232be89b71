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

import logging
import os
from pathlib import Path

from unlearn.config import ConfigError

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
    if strategy_name(strategy) == "deepspeed":
        try:
            import deepspeed  # noqa: F401
        except ImportError as err:
            raise ConfigError("trainer.strategy=deepspeed needs the DeepSpeed package: "
                              "pip install -e '.[deepspeed]' (or choose trainer.strategy=fsdp).") from err
