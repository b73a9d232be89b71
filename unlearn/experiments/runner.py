"""Running a sweep's ``fit`` runs: models first, then the runs, some at a time, each with its own log.

Each run is one ``python -m unlearn fit`` subprocess (a subprocess, not a call, so that a DDP
run's launcher re-runs that ``fit`` command and not the whole sweep, and so that one run's crash or
memory stays its own), in ``<out>/<group>/<name>/``, its output in ``<out>/logs/<name>.log`` and its
command appended to ``<out>/commands.txt``. The policy of :mod:`unlearn.experiments.runs` decides
what runs: a run with a ``summary.json`` is finished and skipped; an interrupted one (a folder
without it) continues from its checkpoint only when asked (``--resume``), as ``fit`` itself does.
Every run's configuration is loaded and validated before anything starts, and the built-in
target and retain models a run needs are trained once, one after the other, before the runs
start, so that parallel runs never train the same model at once.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from unlearn.errors import ConfigError, RunFolderError, RunInterrupted, RunStoppedByUser, UnlearnError
from unlearn.experiments.runs import continuation, is_finished
from unlearn.experiments.sweep_file import Run, SweepFile
from unlearn.names import is_tofu_log

log = logging.getLogger(__name__)
Launch = Callable[[list[str], Path, dict], int]  # (command, log file, environment) -> exit status


class SweepRunError(UnlearnError, RuntimeError):
    """A sweep that could not start its runs (the models it needs could not be prepared)."""


def run_dir(out: Path, run: Run) -> Path:
    """Where ``run`` lives: ``<out>/<group>/<name>``."""
    return Path(out) / run.group / run.name


def run_args(sweep: SweepFile, run: Run, extra: list[str] = ()) -> list[str]:
    """``--config`` files and overrides of ``run``: the base, the run's settings, then ``extra``."""
    configs = [arg for name in sweep.configs for arg in ("--config", name)]
    return [*configs, *sweep.overrides, *run.overrides, *extra]


def fit_command(sweep: SweepFile, run: Run, out: Path, extra: list[str] = ()) -> list[str]:
    """The ``python -m unlearn fit`` command of ``run`` (without the resume overrides)."""
    return [sys.executable, "-m", "unlearn", "fit", *run_args(sweep, run, extra),
            f"run.output_dir={Path(out) / run.group}", f"run.name={run.name}", "trainer.enable_progress_bar=false"]


def load_run_config(sweep: SweepFile, run: Run, extra: list[str] = ()):
    """The run's resolved and validated configuration (as ``fit`` will load it)."""
    from unlearn.config.loading import load_config

    try:
        return load_config(list(sweep.configs), [*sweep.overrides, *run.overrides, *extra])
    except ConfigError as err:
        raise ConfigError(f"run {run.name} of sweep {sweep.path}: {err}") from err


# The number each benchmark compares with a retain model: without one, every run reports it as unavailable.
NEEDS_RETAIN = {"tofu": "forget quality", "muse": "PrivLeak"}


def retain_warning(configs: dict[str, object]) -> str | None:
    """A warning when runs on the user's models (``model.path``) have no ``model.retain_path`` on a benchmark whose
    headline number needs one; ``configs`` maps run names to their configurations. The sweep would run them, and
    hours of GPU time later every summary would say the number is unavailable."""
    missing = {name: NEEDS_RETAIN[cfg.data.source] for name, cfg in configs.items()
               if cfg.model.path and not cfg.model.retain_path and cfg.data.source in NEEDS_RETAIN}
    logs = sorted({str(path) for path in (cfg.model.retain_path for cfg in configs.values())
                   if is_tofu_log(path) and not Path(str(path)).expanduser().is_file()})
    lines = []
    if missing:
        numbers = " and ".join(sorted(set(missing.values())))
        lines.append(f"[sweep] warning: {len(missing)} of {len(configs)} runs have no retain model (model.retain_path), "
                     f"so their {numbers} will be reported as unavailable (e.g. {next(iter(missing))}). Give each "
                     "run's retain model, e.g. per forget split in cases, as configs/sweep/tofu_llama2_7b.yaml does.")
    if logs:
        lines.append(f"[sweep] warning: the retain models' TOFU evaluation logs {', '.join(logs)} do not exist (from "
                     f"{Path.cwd()}); the runs that name them will stop before training. The NPO code's logs are in "
                     "licong-lin/negative-preference-optimization, under TOFU/data/.")
    return "\n".join(lines) or None


def launch_logged(command: list[str], log_path: Path, env: dict) -> int:
    """Run ``command`` with its output in ``log_path``; the exit status."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as out:
        return subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env).returncode


def run_environment(sweep: SweepFile, threads: int | None = None) -> dict[str, str]:
    """The runs' environment: this one, the sweep file's ``env``, and ``OMP_NUM_THREADS`` from ``threads``."""
    env = {**os.environ, **sweep.env}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _record(out: Path, command: list[str]) -> None:
    with (out / "commands.txt").open("a") as f:
        f.write(shlex.join(command) + "\n")


def unfinished(out: Path, runs: list[Run]) -> list[Run]:
    """Runs whose folder exists without a ``summary.json``: interrupted, or failed."""
    return [r for r in runs if run_dir(out, r).exists() and not is_finished(run_dir(out, r))]


def prepare_models(sweep: SweepFile, runs: list[Run], out: Path, extra: list[str], env: dict,
                   launch: Launch | None = None) -> int:
    """Train (or find cached) the built-in target and retain models of ``runs``, one model set at a time: those of
    the built-in benchmarks (TOFU-format, MUSE-format, WMDP stand-in) and those trained from scratch on TOFU-format
    files (``model.from_scratch``).

    Runs on a user's models (``model.path``) need nothing. Returns how many ``finetune`` commands ran.

    Raises:
        SweepRunError: a ``finetune`` failed (its log is named).
    """
    from unlearn.training.assets import trained_models_dir

    launch = launch or launch_logged
    needed: dict[tuple, Run] = {}
    for run in runs:
        # Models that `fit` would otherwise train on first use: trained here, once, so that parallel runs of one
        # seed never train the same models into the same cache folder at once.
        cfg = load_run_config(sweep, run, extra)
        folder = trained_models_dir(cfg)
        if folder is not None:
            needed.setdefault((str(folder), cfg.data.forget_split), run)
    for i, ((folder, split), run) in enumerate(needed.items()):
        command = [sys.executable, "-m", "unlearn", "finetune", *run_args(sweep, run, extra),
                   "trainer.enable_progress_bar=false"]
        _record(out, command)
        log_path = out / "logs" / f"finetune_{Path(folder).name}_{split}.log"
        print(f"[sweep] models {i + 1}/{len(needed)}: {Path(folder).name} ({split})", flush=True)
        if launch(command, log_path, env):
            raise SweepRunError(f"preparing the models of run {run.name} failed; see {log_path}. Command: "
                                f"{shlex.join(command)}")
    return len(needed)


def run_sweep(sweep: SweepFile, runs: list[Run], out: str | Path, extra: list[str] = (), jobs: int = 1,
              resume: bool = False, threads: int | None = None, launch: Launch | None = None) -> dict[str, int]:
    """Run every run of ``runs`` that has not finished, ``jobs`` at a time.

    Args:
        extra: Overrides for every run, after the sweep file's (the command line's ``key=value``).
        resume: Continue interrupted runs from their last checkpoint (one without a checkpoint
            starts again in its folder); without it an interrupted run is an error.
        threads: ``OMP_NUM_THREADS`` of each run (one thread per run is fastest on shared cores).
        launch: Runs one command into a log file (default :func:`launch_logged`); tests replace it.

    Returns:
        ``{run name: exit status}`` of the runs started (0: finished).

    Raises:
        ConfigError: a run's configuration is invalid (checked for every run before any starts).
        RunFolderError: interrupted runs and no ``resume`` (nothing is started).
        SweepRunError: the models could not be prepared.
    """
    out, launch = Path(out), launch or launch_logged
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}.")
    todo = [r for r in runs if not is_finished(run_dir(out, r))]
    configs = {run.name: load_run_config(sweep, run, extra) for run in todo}  # every one before anything starts
    warning = retain_warning(configs)
    if warning:
        print(warning, flush=True)
    stopped = unfinished(out, todo)
    if stopped and not resume:
        names = ", ".join(str(run_dir(out, r)) for r in stopped)
        raise RunFolderError(f"{len(stopped)} run(s) of this sweep stopped before finishing: {names}. Continue them "
                             "with --resume (from their last checkpoint, or from the start in their folder when they "
                             "have none), or delete their folders to start them again.")
    print(f"[sweep] {len(runs) - len(todo)} of {len(runs)} runs already finished; {len(todo)} to run, {jobs} at a "
          f"time, in {out}.", flush=True)
    if not todo:
        return {}
    out.mkdir(parents=True, exist_ok=True)
    env = run_environment(sweep, threads)
    prepare_models(sweep, todo, out, list(extra), env, launch)

    stop = threading.Event()  # a run stopped by Ctrl-C or SIGTERM (exit 130 / 143): start no other

    def one(run: Run) -> tuple[str, int | None]:
        if stop.is_set():
            return run.name, None
        start = time.time()
        # An interrupted earlier attempt continues from its checkpoint (unlearn.experiments.runs).
        command = fit_command(sweep, run, out, extra) + continuation(run_dir(out, run))
        _record(out, command)
        status = launch(command, out / "logs" / f"{run.name}.log", env)
        done = "done" if status == 0 else f"FAILED (exit {status}; log: {out / 'logs' / (run.name + '.log')})"
        print(f"[sweep] {run.name}: {done} in {time.time() - start:.0f} s", flush=True)
        if status in (RunStoppedByUser.exit_code, RunInterrupted.exit_code):
            stop.set()
        return run.name, status

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        statuses = dict(pool.map(one, todo))
    except KeyboardInterrupt:  # Ctrl-C reaches the running fits too, which save their state and stop
        stop.set()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # runs not yet started never start
    if stop.is_set():
        raise RunStoppedByUser(f"the sweep was stopped (Ctrl-C or SIGTERM); no further run started, and the runs "
                               f"that had started saved their last checkpoint. Continue with the same command and "
                               f"--resume (runs in {out}).")
    return statuses
