"""Opening a run folder: a fresh run, a replaced one (``run.overwrite``) or a resumed one (``run.resume``).

Resuming continues ``<run>/checkpoints/last.ckpt`` in the same folder and deletes nothing there:
the TensorBoard log grows, ``config.yaml`` stays the original, and anything cached in the folder
is reused. The configuration must be the one the run started with (except for the keys in
:data:`MAY_CHANGE_ON_RESUME`), because a resumed run is meant to end where the uninterrupted run
would have ended; the checkpoint carries that config (``callbacks/run_config.py``), so the check
holds even when ``config.yaml`` was deleted or edited.

``run.overwrite=true`` replaces only folders this project recognises as its runs
(:func:`is_run_folder`); any other non-empty folder is refused, and nothing in it is deleted.
One process at a time uses a run folder (``unlearn.training.run_lock``).
"""

from __future__ import annotations

import logging
import shlex
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from unlearn.training.checkpoints import checkpoint_config, damaged_checkpoint, last_checkpoint
from unlearn.config.schema import Config, save_config
from unlearn.errors import ConfigError, RunFolderError
from unlearn.files import atomic_write_text
from unlearn.models.safe_load import UnsafeFileError

log = logging.getLogger(__name__)
CONFIG_FILE = "config.yaml"
MODEL_DIR = "model"
# The top-level sections of a config.yaml written by fit: what makes a folder one of this project's runs.
RUN_CONFIG_SECTIONS = ("model", "data", "loss", "optim", "trainer", "run")
# Keys that change where or how often things are written, not what is trained.
MAY_CHANGE_ON_RESUME = {
    "run.resume", "run.overwrite", "run.name", "run.output_dir", "run.cache_dir", "run.keep_checkpoint",
    "run.checkpoint_every_n_steps", "trainer.enable_progress_bar", "trainer.log_every_n_steps", "data.num_workers",
    "trainer.collective_timeout_s",
}
# Whole sections that act only after training (the attacks run on the saved model).
MAY_CHANGE_PREFIXES = ("attack.",)


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


def config_changes(saved_yaml: Path | str, cfg: Config) -> list[str]:
    """``key: saved -> now`` for every training-relevant key that differs from the saved config.

    ``saved_yaml`` is a ``config.yaml`` path, or the YAML text itself (a ``str``, as a checkpoint holds it).
    """
    saved_node = OmegaConf.create(saved_yaml) if isinstance(saved_yaml, str) else OmegaConf.load(saved_yaml)
    saved = _flatten(OmegaConf.to_container(saved_node))
    now = _flatten(OmegaConf.to_container(OmegaConf.structured(cfg)))
    # A key the saved file lacks was added to the project later; it cannot be compared.
    return [f"{key}: {saved[key]!r} -> {now[key]!r}" for key in sorted(now)
            if key in saved and key not in MAY_CHANGE_ON_RESUME and not key.startswith(MAY_CHANGE_PREFIXES)
            and saved[key] != now[key]]


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


def is_run_folder(run_dir: Path) -> bool:
    """Whether ``run_dir`` is a run folder of this project: it holds the ``config.yaml`` that ``fit`` writes."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return False
    try:
        saved = OmegaConf.to_container(OmegaConf.load(path))
    except Exception:  # not YAML, not a mapping: not a config fit wrote
        return False
    return isinstance(saved, dict) and all(isinstance(saved.get(key), dict) for key in RUN_CONFIG_SECTIONS)


def _listing(folder: Path, limit: int = 5) -> str:
    names = sorted(p.name for p in folder.iterdir())
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_new_run(cfg: Config, run_dir: Path) -> None:
    """A fresh run may not land in a non-empty folder, unless ``run.overwrite=true`` and the folder is a run.

    Raises:
        RunFolderError: a non-empty folder without ``run.overwrite=true``, or one that is no run of
            this project (never replaced), or a file in the folder's place.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"Run folder {run_dir} is a file, not a folder. Choose another run.name or "
                             "run.output_dir.")
    if not (run_dir.exists() and any(run_dir.iterdir())):
        return
    if not is_run_folder(run_dir):
        raise RunFolderError(f"Run folder {run_dir} already exists and is not empty ({_listing(run_dir)}), and it is "
                             f"not a run of this project (it has no {CONFIG_FILE} written by fit), so it is never "
                             "replaced: run.overwrite=true replaces only run folders. Nothing was deleted. Choose "
                             "another run.name or run.output_dir.")
    if not cfg.run.overwrite:
        hint = " or pass --resume to continue it" if last_checkpoint(run_dir) and not (run_dir / MODEL_DIR).exists() \
            else ""
        raise RunFolderError(f"Run folder {run_dir} already exists and is not empty. Choose another run.name{hint}, "
                              "or pass run.overwrite=true to replace it.")


def check_resumable(cfg: Config, run_dir: Path) -> Path | None:
    """Check that ``run_dir`` holds an unfinished run started with this config.

    Returns:
        The checkpoint to continue from, or None when the run stopped before its first one (it
        then starts from the beginning, in the same folder).

    The config is compared with the one the checkpoint carries (the run's source of truth), or
    with ``config.yaml`` when the checkpoint carries none (checkpoints written before it did).

    Raises:
        ConfigError: no such folder, the config differs from the run's, or there is a checkpoint but
            no record of its config to compare with.
        RunFolderError: the run already finished, or its checkpoint cannot be read.
    """
    if not run_dir.is_dir():
        runs = sorted(p.name for p in run_dir.parent.iterdir() if p.is_dir()) if run_dir.parent.is_dir() else []
        raise ConfigError(f"run.resume=true: there is no run folder {run_dir}. Runs in {run_dir.parent}: "
                          f"{', '.join(runs) or 'none'}. Give the folder name with run.name=...")
    if (run_dir / MODEL_DIR).exists():
        raise RunFolderError(f"Run {run_dir} has already finished (its model is {run_dir / MODEL_DIR}); there is "
                              "nothing to resume. Start a new run with another run.name.")
    checkpoint, saved = last_checkpoint(run_dir), run_dir / CONFIG_FILE
    recorded = _checkpoint_config(checkpoint) if checkpoint else None
    if recorded is not None:
        changes, source = config_changes(recorded, cfg), f"recorded in {checkpoint}"
    elif saved.is_file():
        if (problem := config_file_problem(saved)) is not None:
            raise ConfigError(
                f"run.resume=true: {saved} is damaged ({problem}), and "
                f"{'the checkpoint predates the config record' if checkpoint else 'the run has no checkpoint yet'}, "
                f"so nothing says which config run {run_dir.name} started with. Nothing was changed. Put the run's "
                f"{CONFIG_FILE} back (the same command with --show-config prints it), or "
                + ("start a new run with another run.name." if checkpoint else
                   f"delete {saved} to start the run again from the beginning with this config."))
        changes, source = config_changes(saved, cfg), str(saved)
    elif checkpoint is not None:
        raise ConfigError(f"run.resume=true: run {run_dir.name} has a checkpoint but no {CONFIG_FILE}, and the "
                          "checkpoint predates the config record, so nothing says which config it was trained with. "
                          f"Put the run's {CONFIG_FILE} back in {run_dir} (e.g. from the same command with "
                          f"--show-config), then resume.")
    else:  # nothing was trained yet: the run starts from the beginning with this config
        changes, source = [], ""
    if changes:
        raise ConfigError(f"run.resume=true: the config differs from the one run {run_dir.name} started with "
                          f"({source}): {'; '.join(changes)}. Resume with the same --config files and overrides "
                          "(plus --resume), or start a new run.")
    return checkpoint


def config_file_problem(path: Path) -> str | None:
    """Why the ``config.yaml`` at ``path`` is not a config ``fit`` could have written (not YAML, not a mapping), or None."""
    try:
        saved = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as err:  # not YAML (or unreadable)
        return f"not YAML: {(str(err).strip().splitlines() or [type(err).__name__])[0][:160]}"
    if not isinstance(saved, dict):
        return f"not a mapping of config sections but a {type(saved).__name__}"
    return None


def _put_back_config(run_dir: Path, recorded: str) -> None:
    """Write the checkpoint's config as ``config.yaml``; a damaged one there is kept aside, never deleted."""
    path = run_dir / CONFIG_FILE
    if path.is_file():
        problem, aside = config_file_problem(path), path.with_name(f"{CONFIG_FILE}.damaged")
        n = 1
        while aside.exists():
            aside, n = path.with_name(f"{CONFIG_FILE}.damaged.{n}"), n + 1
        path.rename(aside)
        log.warning("%s is damaged (%s); the run continues with the config recorded in its checkpoint, written back "
                    "to %s. The damaged file is kept as %s.", path, problem, path, aside)
    atomic_write_text(path, recorded)


def _checkpoint_config(checkpoint: Path) -> str | None:
    try:
        return checkpoint_config(checkpoint)
    except UnsafeFileError as err:  # torch's advice (weights_only=False) is never passed on
        raise UnsafeFileError(f"run.resume=true: {err}") from None
    except Exception as err:  # unreadable, truncated by a full disk, not a checkpoint
        raise RunFolderError(f"run.resume=true: {damaged_checkpoint(checkpoint, err)}") from err


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
        saved = run_dir / CONFIG_FILE
        if not saved.is_file() or config_file_problem(saved):  # the config the run started with, as recorded
            recorded = _checkpoint_config(checkpoint) if checkpoint else None
            if recorded:
                _put_back_config(run_dir, recorded)
            else:  # no record: check_resumable refused a damaged config.yaml; a missing one is written
                save_config(cfg, saved)
        return checkpoint
    check_new_run(cfg, run_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and cfg.run.overwrite:  # a run folder (check_new_run)
        log.warning("run.overwrite=true: deleting the earlier run in %s (%s) to start this one there.", run_dir,
                    _listing(run_dir))
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_FILE)
    return None
