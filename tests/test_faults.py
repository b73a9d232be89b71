"""Faults and damaged run folders: each ends in one clear `error:` line and loses nothing the user had
(docs/reliability.md, "Faults and run folders").

The fast tests refuse before any model or data loads; the `slow` ones train the tiny built-in model
(`tiny_cache`), and the Ctrl-C test stops a real process.
"""

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import unlearn.training.checkpoints
from tests.helpers import TINY_CONFIG
from unlearn.cli import COMMANDS, Command, main
from unlearn.config.loading import load_config
from unlearn.config.schema import save_config, to_yaml
from unlearn.errors import ConfigError, DiskFullError, RunFolderError
from unlearn.files import check_writable
from unlearn.training.checkpoints import CHECKPOINT_DIR, LAST, RUN_CONFIG_STATE, AtomicCheckpointIO
from unlearn.training.resume import check_resumable, open_run_directory

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _fit(tmp_path, name="x", *extra, cache=None):
    return ["fit", "--config", TINY_CONFIG, f"run.cache_dir={cache or tmp_path / 'cache'}",
            f"run.output_dir={tmp_path / 'runs'}", f"run.name={name}", "eval.enabled=false", *extra]


def _started_run(tmp_path, record=True):
    """runs/x as fit leaves it mid-run: config.yaml and a checkpoint (carrying its config when ``record``)."""
    cfg = load_config([TINY_CONFIG], _fit(tmp_path)[3:])
    run = tmp_path / "runs" / "x"
    (run / CHECKPOINT_DIR).mkdir(parents=True)
    save_config(cfg, run / "config.yaml")
    state = {"global_step": 3, "weights": torch.zeros(4096),
             "callbacks": {RUN_CONFIG_STATE: {"config": to_yaml(cfg)}} if record else {}}
    torch.save(state, run / CHECKPOINT_DIR / LAST)
    return cfg, run, run / CHECKPOINT_DIR / LAST


def _files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- 1. a damaged checkpoint -----------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_checkpoint_is_named_kept_and_the_ways_on_are_given(tmp_path, capsys, damage):
    _, run, checkpoint = _started_run(tmp_path)
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    before = _files(run)
    assert main([*_fit(tmp_path), "--resume"]) == 2
    err = capsys.readouterr().err
    assert f"cannot read the checkpoint {checkpoint}: it is damaged" in err and err.count("\n") == 1
    assert "another run.name" in err and f"delete {checkpoint}" in err and "from the beginning" in err
    assert _files(run) == before and not (tmp_path / "cache").exists()  # nothing lost, nothing loaded
    # Lightning's own load (a checkpoint damaged after the resume check read it) says the same.
    with pytest.raises(RunFolderError, match="it is damaged"):
        AtomicCheckpointIO().load_checkpoint(checkpoint)
    # The second way on: without the damaged file the run starts again from the beginning in its folder.
    checkpoint.unlink()
    assert check_resumable(load_config([TINY_CONFIG], _fit(tmp_path)[3:] + ["run.resume=true"]), run) is None


# --- 2. a damaged config.yaml ------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["model: [unclosed\n", "- a list\n- not a config\n"])
def test_a_damaged_config_yaml_is_replaced_by_the_checkpoints_record_and_kept_aside(tmp_path, caplog, text):
    cfg, run, checkpoint = _started_run(tmp_path)
    (run / "config.yaml").write_text(text)
    resumed = load_config([TINY_CONFIG], _fit(tmp_path)[3:] + ["run.resume=true"])
    assert open_run_directory(resumed, run) == checkpoint
    assert (run / "config.yaml").read_text() == to_yaml(cfg)  # what the run trained with
    assert (run / "config.yaml.damaged").read_text() == text  # the user's file, kept
    assert "is damaged" in caplog.text and "config.yaml.damaged" in caplog.text


def test_a_damaged_config_yaml_without_a_record_is_refused_and_left_alone(tmp_path, capsys):
    _, run, checkpoint = _started_run(tmp_path, record=False)  # a checkpoint from before the config record
    (run / "config.yaml").write_text("- a list\n")
    before = _files(run)
    assert main([*_fit(tmp_path), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "config.yaml is damaged (not a mapping" in err and "predates the config record" in err
    assert "another run.name" in err and _files(run) == before
    checkpoint.unlink()  # stopped before its first checkpoint: deleting config.yaml would start it afresh
    with pytest.raises(ConfigError, match=r"no checkpoint yet.*delete .*config.yaml to start the run again"):
        check_resumable(load_config([TINY_CONFIG], _fit(tmp_path)[3:] + ["run.resume=true"]), run)


# --- 3. folders that cannot be written ----------------------------------------------------------------

def test_a_cache_dir_that_is_a_file_is_refused_before_anything_loads(tmp_path, capsys):
    (tmp_path / "cache").write_text("a file")
    assert main(_fit(tmp_path)) == 2
    err = capsys.readouterr().err
    assert f"run.cache_dir={tmp_path / 'cache'} cannot be used: {tmp_path / 'cache'} is a file" in err
    assert "Set run.cache_dir to a folder" in err
    assert not (tmp_path / "runs" / "x").exists()  # a refused run leaves no run folder
    assert main(["eval", "--config", TINY_CONFIG, f"run.cache_dir={tmp_path / 'cache' / 'sub'}",
                 f"run.output_dir={tmp_path / 'runs'}"]) == 2
    assert "run.cache_dir=" in capsys.readouterr().err and not list((tmp_path / "runs").glob("eval_*"))


def test_finetune_checks_its_out_and_cache_dir_before_loading_a_model(tmp_path, capsys):
    (tmp_path / "file").write_text("a file")
    args = ["finetune", "--config", TINY_CONFIG, f"model.path={tmp_path / 'no-model'}"]  # loading would fail
    assert main([*args, f"run.cache_dir={tmp_path / 'file'}"]) == 2
    assert f"run.cache_dir={tmp_path / 'file'} cannot be used: {tmp_path / 'file'} is a file" in capsys.readouterr().err
    assert main([*args, f"run.cache_dir={tmp_path / 'cache'}", "--out", str(tmp_path / "file" / "out")]) == 2
    assert f"--out={tmp_path / 'file' / 'out'} cannot be used" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_a_read_only_folder_is_found_by_a_real_write_probe(tmp_path, monkeypatch):
    check_writable(tmp_path / "new" / "deeper", "run.output_dir")  # missing folders are fine, and not created
    assert not (tmp_path / "new").exists() and not list(tmp_path.iterdir())

    def read_only(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("pathlib.Path.touch", read_only)  # as a read-only mount answers, even to root
    with pytest.raises(ConfigError, match=rf"run.output_dir={tmp_path}/runs cannot be used: {tmp_path} is not "
                                          r"writable: Permission denied\. .*Set run.output_dir"):
        check_writable(tmp_path / "runs", "run.output_dir")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; the probe test above covers it")
def test_a_read_only_cache_dir_is_refused(tmp_path, capsys):
    (tmp_path / "cache").mkdir(mode=0o555)
    assert main(_fit(tmp_path)) == 2
    assert "run.cache_dir=" in capsys.readouterr().err and not (tmp_path / "runs" / "x").exists()


# --- 4. a full disk during a checkpoint ----------------------------------------------------------------

def _full_disk(obj, path):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / LAST
    AtomicCheckpointIO().save_checkpoint({"step": 1}, path)
    monkeypatch.setattr(unlearn.training.checkpoints.torch, "save", _full_disk)
    with pytest.raises(DiskFullError, match=f"no space left on the device holding {path}; the last checkpoint "
                                            f"{path} is intact"):
        AtomicCheckpointIO().save_checkpoint({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 1} and os.listdir(tmp_path) == [LAST]


@pytest.mark.slow
def test_a_full_disk_mid_run_says_how_to_resume_and_the_resume_finishes(tiny_cache, tmp_path, monkeypatch, capsys,
                                                                       one_thread):
    args = _fit(tmp_path, "full", "trainer.max_epochs=3", cache=tiny_cache)
    real, saves = torch.save, []

    def fills_up(obj, path):
        saves.append(path)
        if len(saves) == 2:  # the first epoch's checkpoint fits, the second does not
            raise OSError(errno.ENOSPC, "No space left on device")
        real(obj, path)

    monkeypatch.setattr(unlearn.training.checkpoints.torch, "save", fills_up)
    checkpoint = tmp_path / "runs" / "full" / CHECKPOINT_DIR / LAST
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"no space left on the device holding {checkpoint}; the last checkpoint {checkpoint} is intact" in err
    assert "Free space and resume with:" in err and "--resume" in err and "Traceback" not in err
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 0
    monkeypatch.setattr(unlearn.training.checkpoints.torch, "save", real)  # space freed
    assert main([*args, "--resume"]) == 0 and (tmp_path / "runs" / "full" / "model").is_dir()


# --- 5. Ctrl-C -----------------------------------------------------------------------------------------

def test_ctrl_c_outside_training_exits_130_with_a_message(monkeypatch, capsys, tmp_path):
    def interrupted(cfg, args):
        raise KeyboardInterrupt

    monkeypatch.setitem(COMMANDS, "fit", Command("fit", interrupted))
    assert main(_fit(tmp_path)) == 130
    assert "error: stopped by Ctrl-C (SIGINT)" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_saves_the_state_exits_130_and_the_printed_resume_finishes(tiny_cache, tmp_path):
    args = _fit(tmp_path, "ctrl_c", "trainer.max_epochs=6", "data.batch_size=1", "run.checkpoint_every_n_steps=2",
                cache=tiny_cache)
    proc = subprocess.Popen([sys.executable, "-m", "unlearn", *args], env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    checkpoint = tmp_path / "runs" / "ctrl_c" / CHECKPOINT_DIR / LAST
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and not checkpoint.exists():
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    assert "error: stopped by Ctrl-C (SIGINT) after the last finished batch, whose state is saved" in err
    assert f"The run's last checkpoint is {checkpoint}; continue with:" in err and "Traceback" not in err
    command = err.strip().splitlines()[-1].split()
    assert command[:4] == ["python", "-m", "unlearn", "fit"] and command[-1] == "--resume"
    assert not (tmp_path / "runs" / "ctrl_c" / "model").exists()
    done = subprocess.run([sys.executable, *command[1:]], env=ENV, text=True, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)  # the printed command, as it is (its config.yaml names the cache)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "runs" / "ctrl_c" / "model").is_dir()


# --- 6. eval leaves no folder behind, and names the model folder of a run ------------------------------

def _eval(tmp_path, *extra):
    return ["eval", "--config", TINY_CONFIG, f"run.cache_dir={tmp_path / 'cache'}",
            f"run.output_dir={tmp_path / 'runs'}", *extra]


def test_eval_of_a_model_that_fails_to_load_leaves_no_folder(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    missing = tmp_path / "no_model"
    assert main(_eval(tmp_path, f"model.path={missing}", f"model.retain_path={missing}")) == 1
    assert "Cannot load" in capsys.readouterr().err
    assert list((tmp_path / "runs").iterdir()) == []


def test_eval_of_a_run_folder_asks_for_its_model_folder(tmp_path, capsys):
    run = tmp_path / "runs" / "x"
    (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text("model: {}\n")
    assert main(_eval(tmp_path, f"model.path={run}")) == 2
    assert f"did you mean model.path={run / 'model'}?" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["x"] and not (tmp_path / "cache").exists()
