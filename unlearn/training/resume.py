"""Opening a run folder: a fresh run, a replaced one (``run.overwrite``) or a resumed one (``run.resume``).

Resuming continues ``<run>/checkpoints/last.ckpt`` in the same folder and deletes nothing there:
the TensorBoard log grows, ``config.yaml`` stays the original, and anything cached in the folder
is reused. The configuration must be the one the run started with (except for the keys in
:data:`MAY_CHANGE_ON_RESUME`), because a resumed run is meant to end where the uninterrupted run
would have ended.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from unlearn.training.checkpoints import last_checkpoint
from unlearn.config.schema import Config, save_config
from unlearn.errors import ConfigError, RunFolderError

log = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"
MODEL_DIR = "model"
# Keys that change where or how often things are written, not what is trained.
MAY_CHANGE_ON_RESUME = {
    "run.resume", "run.overwrite", "run.name", "run.output_dir", "run.cache_dir", "run.keep_checkpoint",
    "run.checkpoint_every_n_steps", "trainer.enable_progress_bar", "trainer.log_every_n_steps", "data.num_workers",
    "trainer.collective_timeout_s",
}


def resume_command(run_dir: Path) -> str:
    """The command that continues the run in ``run_dir``: its own resolved config, plus ``--resume``."""
    run_dir = Path(run_dir)
    return shlex.join(["python", "-m", "unlearn", "fit", "--config", str(run_dir / CONFIG_FILE),
                       f"run.output_dir={run_dir.parent}", f"run.name={run_dir.name}", "--resume"])


def resume_hint(run_dir: Path) -> str:
    """Where the run's state is and the exact command that continues it."""
    checkpoint = last_checkpoint(run_dir)
    saved = (f"The run's last checkpoint is {checkpoint}" if checkpoint else
             f"The run {run_dir} has no checkpoint yet, so it starts again from the beginning")
    return f"{saved}; continue with:\n  {resume_command(run_dir)}"


def _flatten(node: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(node, dict):
        return {prefix[:-1]: node}
    flat: dict[str, Any] = {}
    for key, value in node.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def config_changes(saved_yaml: Path, cfg: Config) -> list[str]:
    """``key: saved -> now`` for every training-relevant key that differs from the saved config."""
    saved = _flatten(OmegaConf.to_container(OmegaConf.load(saved_yaml)))
    now = _flatten(OmegaConf.to_container(OmegaConf.structured(cfg)))
    # A key the saved file lacks was added to the project later; it cannot be compared.
    return [f"{key}: {saved[key]!r} -> {now[key]!r}" for key in sorted(now)
            if key in saved and key not in MAY_CHANGE_ON_RESUME and saved[key] != now[key]]


def check_outside_inputs(run_dir: Path, inputs: tuple[str | Path | None, ...]) -> None:
    """The run folder may neither contain nor sit inside a local input (model, tokenizer or data folder).

    Raises:
        ConfigError: naming the run folder and the input.
    """
    for path in inputs:
        if path and Path(path).expanduser().exists():
            inside, outside = Path(path).expanduser().resolve(), run_dir.resolve()
            if inside.is_relative_to(outside) or outside.is_relative_to(inside):
                raise ConfigError(f"The run folder {run_dir} and the input {path} overlap; the run could overwrite "
                                  "its own input. Choose another run.output_dir or run.name.")


def check_new_run(cfg: Config, run_dir: Path) -> None:
    """A fresh run may not land in a non-empty folder unless ``run.overwrite=true``."""
    if run_dir.exists() and any(run_dir.iterdir()) and not cfg.run.overwrite:
        hint = " or pass --resume to continue it" if last_checkpoint(run_dir) and not (run_dir / MODEL_DIR).exists() \
            else ""
        raise RunFolderError(f"Run folder {run_dir} already exists and is not empty. Choose another run.name{hint}, "
                              "or pass run.overwrite=true to replace it.")


def check_resumable(cfg: Config, run_dir: Path) -> Path | None:
    """Check that ``run_dir`` holds an unfinished run started with this config.

    Returns:
        The checkpoint to continue from, or None when the run stopped before its first one (it
        then starts from the beginning, in the same folder).

    Raises:
        ConfigError: no such folder, or the config differs from the saved one.
        FileExistsError: the run already finished.
    """
    if not run_dir.is_dir():
        runs = sorted(p.name for p in run_dir.parent.iterdir() if p.is_dir()) if run_dir.parent.is_dir() else []
        raise ConfigError(f"run.resume=true: there is no run folder {run_dir}. Runs in {run_dir.parent}: "
                          f"{', '.join(runs) or 'none'}. Give the folder name with run.name=...")
    if (run_dir / MODEL_DIR).exists():
        raise RunFolderError(f"Run {run_dir} has already finished (its model is {run_dir / MODEL_DIR}); there is "
                              "nothing to resume. Start a new run with another run.name.")
    saved = run_dir / CONFIG_FILE
    if saved.is_file():
        changes = config_changes(saved, cfg)
        if changes:
            raise ConfigError(f"run.resume=true: the config differs from the one run {run_dir.name} started with "
                              f"({saved}): {'; '.join(changes)}. Resume with the same --config files and overrides "
                              "(plus --resume), or start a new run.")
    return last_checkpoint(run_dir)


def open_run_directory(cfg: Config, run_dir: Path) -> Path | None:
    """Make ``run_dir`` ready for training, after every input has been checked.

    A fresh run creates the folder (replacing it under ``run.overwrite=true``) and writes the
    resolved ``config.yaml``; a resumed run keeps everything it finds.

    Returns:
        The checkpoint to resume from, or None.
    """
    if cfg.run.resume:
        checkpoint = check_resumable(cfg, run_dir)
        if checkpoint is None:
            log.warning("Run %s has no checkpoint yet (it stopped before its first one); starting it again from "
                        "the beginning in the same folder.", run_dir)
        else:
            log.info("Resuming run %s from %s", run_dir, checkpoint)
        if not (run_dir / CONFIG_FILE).is_file():
            save_config(cfg, run_dir / CONFIG_FILE)
        return checkpoint
    check_new_run(cfg, run_dir)
    if run_dir.exists() and cfg.run.overwrite:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    return None
