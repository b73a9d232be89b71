"""Run folders that no command can lose: one run per folder (an OS lock), `run.overwrite` only on runs,
and `--resume` checked against the config the checkpoint carries (docs/reliability.md, "Data loss").

The fast tests refuse before any slow work: each points `run.cache_dir` at an empty folder and checks
that it was never created (the built-in benchmark and models were not even looked for).
"""

import logging
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.helpers import TINY_CONFIG
from unlearn.cli import main
from unlearn.config.loading import load_config
from unlearn.config.schema import save_config, to_yaml
from unlearn.errors import ConfigError, RunFolderError
from unlearn.training.checkpoints import CHECKPOINT_DIR, LAST, RUN_CONFIG_STATE, checkpoint_config
from unlearn.training.resume import check_new_run, check_resumable, is_run_folder, open_run_directory
from unlearn.training.run_lock import RunFolderLock, lock_path

HOLD = ("import sys, time; from unlearn.training.run_lock import RunFolderLock; "
        "RunFolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(600)")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _fit(tmp_path, name="x", *extra, cache=None):
    return ["fit", "--config", TINY_CONFIG, f"run.cache_dir={cache or tmp_path / 'cache'}",
            f"run.output_dir={tmp_path / 'runs'}", f"run.name={name}", "eval.enabled=false", *extra]


@pytest.fixture
def holder(tmp_path):
    """Another process holding the lock of runs/x (killed with SIGKILL at the end, if still alive)."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "runs" / "x")], stdout=subprocess.PIPE,
                            text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    yield proc
    proc.kill()
    proc.wait()


def test_a_held_folder_is_refused_at_once_naming_the_holder(tmp_path, holder, capsys):
    for resume in ([], ["--resume"]):
        start = time.monotonic()
        assert main([*_fit(tmp_path), *resume]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another run: pid {holder.pid} on host" in err and "command: python" in err, err
        assert time.monotonic() - start < 5 and not (tmp_path / "cache").exists()  # before any slow work
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [".x.lock"]  # no run folder was made


def test_a_lock_left_by_a_killed_process_is_taken_over(tmp_path, holder, caplog):
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert lock_path(tmp_path / "runs" / "x").is_file()  # left behind, but nobody holds it now
    with caplog.at_level(logging.WARNING, logger="unlearn"):
        lock = RunFolderLock(tmp_path / "runs" / "x").acquire()
    assert f"last held by pid {holder.pid} on host" in caplog.text and "ended without releasing it" in caplog.text
    lock.release()
    assert not lock_path(tmp_path / "runs" / "x").exists()


def test_one_lock_per_folder_even_within_a_process_and_free_again_after_release(tmp_path):
    first = RunFolderLock(tmp_path / "runs" / "a").acquire()
    with pytest.raises(RunFolderError, match=f"pid {os.getpid()} on host"):
        RunFolderLock(tmp_path / "runs" / "a").acquire()
    other = RunFolderLock(tmp_path / "runs" / "b").acquire()  # another folder: its own lock
    first.release()
    again = RunFolderLock(tmp_path / "runs" / "a").acquire()
    again.release()
    other.release()
    assert list((tmp_path / "runs").iterdir()) == []


def test_an_output_dir_that_cannot_hold_the_lock_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "runs").write_text("a file where the output folder should be")
    assert main(_fit(tmp_path)) == 2
    assert f"Cannot create the run folder's lock {tmp_path / 'runs' / '.x.lock'}" in capsys.readouterr().err


def test_launched_ranks_reuse_the_folder_without_taking_its_lock(tmp_path, monkeypatch):
    """Rank 0 holds the lock; a rank it launched (LOCAL_RANK=1, UNLEARN_RUN_DIR) must neither wait nor be refused."""
    import unlearn.training.fit as fit_module

    run_dir = tmp_path / "runs" / "x"
    cfg = load_config([TINY_CONFIG], [f"run.output_dir={tmp_path / 'runs'}", "run.name=x"])
    monkeypatch.setattr(fit_module, "_fit_in", lambda cfg, loss, run_dir, start: {"run_dir": run_dir})
    lock = RunFolderLock(run_dir).acquire()
    try:
        with pytest.raises(RunFolderError, match="in use by another run"):
            fit_module.fit(cfg)
        monkeypatch.setenv("LOCAL_RANK", "1")
        monkeypatch.setenv("UNLEARN_RUN_DIR", str(run_dir))
        assert fit_module.fit(cfg) == {"run_dir": run_dir}
    finally:
        lock.release()


# --- run.overwrite replaces runs only --------------------------------------------------------------

def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    notes = tmp_path / "runs" / "x"
    notes.mkdir(parents=True)
    (notes / "notes.txt").write_text("my notes")
    (notes / "config.yaml").write_text("run:\n  name: x\n")  # a config.yaml, but not one fit wrote
    for extra in (["run.overwrite=true"], []):
        assert main(_fit(tmp_path, "x", *extra)) == 2
        err = capsys.readouterr().err
        assert "is not a run of this project" in err and "Nothing was deleted" in err, err
        assert "pass run.overwrite=true" not in err
    assert (notes / "notes.txt").read_text() == "my notes" and not (tmp_path / "cache").exists()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["x"]  # the lock file went with its run


def test_overwrite_replaces_a_run_and_says_so(tmp_path, caplog):
    run_dir = tmp_path / "x"
    cfg = load_config([], ["run.overwrite=true"])
    (tmp_path / "empty").mkdir()
    for folder in (tmp_path / "empty", tmp_path / "absent"):  # an empty or missing folder is always fine
        check_new_run(load_config(), folder)
    save_config(cfg, run_dir / "config.yaml")
    (run_dir / "tensorboard").mkdir()
    assert is_run_folder(run_dir)
    with pytest.raises(RunFolderError, match="pass run.overwrite=true to replace it"):
        check_new_run(load_config(), run_dir)  # a run: the hint stays
    with caplog.at_level(logging.WARNING, logger="unlearn"):
        assert open_run_directory(cfg, run_dir) is None
    assert f"run.overwrite=true: deleting the earlier run in {run_dir} (config.yaml, tensorboard)" in caplog.text
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml"]
    (tmp_path / "file").write_text("")
    with pytest.raises(RunFolderError, match="is a file, not a folder"):
        check_new_run(cfg, tmp_path / "file")


# --- --resume compares with the config the checkpoint carries --------------------------------------

def _checkpoint(run_dir, cfg=None):
    """A checkpoint as fit writes it, as far as the resume check reads it."""
    state = {"global_step": 3, "callbacks": {} if cfg is None else {RUN_CONFIG_STATE: {"config": to_yaml(cfg)}}}
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True)
    torch.save(state, run_dir / CHECKPOINT_DIR / LAST)
    return run_dir / CHECKPOINT_DIR / LAST


def test_resume_without_config_yaml_checks_the_config_in_the_checkpoint(tmp_path):
    started = load_config([], ["run.name=x", "data.batch_size=4"])
    checkpoint = _checkpoint(tmp_path / "x", started)
    assert checkpoint_config(checkpoint) == to_yaml(started)
    changed = load_config([], ["run.name=x", "run.resume=true", "data.batch_size=2"])
    with pytest.raises(ConfigError, match=re.escape(f"(recorded in {checkpoint}): data.batch_size: 4 -> 2")):
        check_resumable(changed, tmp_path / "x")
    save_config(changed, tmp_path / "x" / "config.yaml")  # an edited config.yaml does not override the checkpoint
    with pytest.raises(ConfigError, match="data.batch_size: 4 -> 2"):
        check_resumable(changed, tmp_path / "x")
    (tmp_path / "x" / "config.yaml").unlink()
    same = load_config([], ["run.name=x", "run.resume=true", "data.batch_size=4",
                            "run.checkpoint_every_n_steps=5"])  # where and how often things are written may change
    assert open_run_directory(same, tmp_path / "x") == checkpoint
    assert (tmp_path / "x" / "config.yaml").read_text() == to_yaml(started)  # put back as the run started


def test_resume_refuses_what_it_cannot_check_or_read(tmp_path):
    cfg = load_config([], ["run.name=x", "run.resume=true"])
    checkpoint = _checkpoint(tmp_path / "x")  # written before checkpoints carried the config
    with pytest.raises(ConfigError, match="predates the config record"):
        check_resumable(cfg, tmp_path / "x")
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(RunFolderError, match="cannot read the checkpoint"):
        check_resumable(cfg, tmp_path / "x")
    (tmp_path / "y").mkdir()  # stopped before its first checkpoint and config.yaml gone: starts afresh
    assert check_resumable(load_config([], ["run.name=y", "run.resume=true"]), tmp_path / "y") is None


# --- processes -------------------------------------------------------------------------------------

def _popen(args):
    return subprocess.Popen([sys.executable, "-m", "unlearn", *args], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_two_runs_started_together_in_one_folder(tiny_cache, tmp_path):
    # Training lasts about 10 s after a start-up of several: long enough that the later of the two
    # processes reaches the lock while the earlier one holds it, even on busy cores.
    procs = {lr: _popen(_fit(tmp_path, "same", "trainer.max_epochs=100", "data.batch_size=1", f"optim.lr={lr}",
                             "trainer.enable_progress_bar=false", cache=tiny_cache)) for lr in ("0.001", "0.002")}
    ended = {}
    while len(ended) < 2:
        ended.update({lr: time.monotonic() for lr, p in procs.items() if lr not in ended and p.poll() is not None})
        time.sleep(0.05)
    errors = {lr: p.stderr.read() for lr, p in procs.items()}
    (winner, won), (loser, lost) = sorted(procs.items(), key=lambda item: item[1].returncode)
    assert (won.returncode, lost.returncode) == (0, 2), errors
    assert f"is in use by another run: pid {won.pid} on host" in errors[loser], errors[loser]
    assert ended[loser] < ended[winner]  # refused at once, not after training
    run_dir = tmp_path / "runs" / "same"
    assert f"lr: {winner}" in (run_dir / "config.yaml").read_text()
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "model", "summary.json", "tensorboard"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["same"]  # the lock file is gone


@pytest.mark.slow
def test_a_run_killed_with_its_lock_resumes_and_its_config_is_checked(tiny_cache, tmp_path, caplog, capsys):
    args = _fit(tmp_path, "killed", "trainer.max_epochs=3", "data.batch_size=1", "run.checkpoint_every_n_steps=1",
                "trainer.enable_progress_bar=false", cache=tiny_cache)
    proc = _popen(args)
    checkpoint = tmp_path / "runs" / "killed" / CHECKPOINT_DIR / LAST
    deadline = time.time() + 180
    while proc.poll() is None and time.time() < deadline and not checkpoint.is_file():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, proc.stderr.read()[-2000:]
    assert lock_path(tmp_path / "runs" / "killed").is_file()  # stale: the OS released the flock
    started = (tmp_path / "runs" / "killed" / "config.yaml").read_text()

    with caplog.at_level(logging.WARNING, logger="unlearn"):
        assert main(args) == 2  # a fresh run takes the dead process's lock, and is refused by the folder
    assert f"last held by pid {proc.pid}" in caplog.text and "ended without releasing it" in caplog.text
    assert "already exists" in (err := capsys.readouterr().err) and "in use" not in err and "--resume" in err
    (tmp_path / "runs" / "killed" / "config.yaml").unlink()
    assert main([*args, "data.batch_size=2", "--resume"]) == 2  # config.yaml gone: the checkpoint still knows
    assert "data.batch_size: 1 -> 2" in (err := capsys.readouterr().err) and "recorded in" in err, err
    assert main([*args, "--resume"]) == 0
    assert (tmp_path / "runs" / "killed" / "config.yaml").read_text() == started
    assert (tmp_path / "runs" / "killed" / "model").is_dir()
    assert not lock_path(tmp_path / "runs" / "killed").exists()
