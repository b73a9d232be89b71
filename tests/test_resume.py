"""Resuming: a run stopped at any point and resumed ends with the weights of an uninterrupted run.

The in-process tests stop a tiny run with dropout (so the random generators matter) at chosen
steps, mid-epoch and at epoch ends, either by a crash between checkpoints (what SIGKILL leaves) or
by SIGTERM (a scheduler's pre-emption, after which the state is saved). The slow test kills a real
``python -m unlearn fit`` process with SIGKILL and resumes it from the command line.
"""

import os
import signal
import subprocess
import sys
import time

import lightning as L
import pytest
import torch
from safetensors.torch import load_file

from tests.helpers import QA, TINY_CONFIG, tiny_model, tiny_tokenizer
from unlearn.callbacks.checkpointing import LastCheckpoint, RNGState
from unlearn.training.checkpoints import LAST, AtomicCheckpointIO
from unlearn.cli import main
from unlearn.errors import ConfigError
from unlearn.config.loading import load_config
from unlearn.data.datamodule import UnlearningDataModule
from unlearn.training.fit import fit
from unlearn.losses import build_loss
from unlearn.training.module import UnlearningModule

EPOCHS, STEPS_PER_EPOCH = 3, 4  # 8 forget rows in batches of 2


class Crash(RuntimeError):
    pass


class StopAt(L.Callback):
    """Stops training after optimiser step ``step``: a crash (nothing saved) or a SIGTERM.

    With gradient accumulation ``batches_after`` stops that many batches later, inside the next step.
    """

    def __init__(self, step: int, how: str, batches_after: int = 0):
        self.step, self.how, self.seen = step, how, -batches_after

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen += trainer.global_step == self.step
        if self.seen == 1:
            if self.how == "crash":
                raise Crash(f"stopped at step {self.step}")
            trainer._signal_connector.received_sigterm = True


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def _train(tokenizer, ckpt_dir, every=None, ckpt_path=None, stop=None, accumulate=1):
    L.seed_everything(0, verbose=False)
    model = tiny_model(tokenizer, attention_dropout=0.3)  # dropout: the random state matters on resume
    module = UnlearningModule(model, build_loss("grad_diff"), None, lr=1e-2, warmup_epochs=0.5)
    datamodule = UnlearningDataModule(QA[:8], QA[8:], [], tokenizer, batch_size=2, seed=3)
    trainer = L.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, deterministic=True, plugins=[AtomicCheckpointIO()],
                        accumulate_grad_batches=accumulate,
                        callbacks=[RNGState(), LastCheckpoint(ckpt_dir, every), *([stop] if stop else [])])
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return {k: v.clone() for k, v in module.policy.state_dict().items()}, trainer.global_step


@pytest.fixture(scope="module")
def uninterrupted(tokenizer, tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same count as the resumed runs, so the float arithmetic matches too
    try:
        return _train(tokenizer, tmp_path_factory.mktemp("straight"))
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("how, step, every", [
    ("crash", 7, 3),     # killed after step 7: resumes mid-epoch from the step-6 checkpoint
    ("crash", 6, None),  # killed mid-epoch 1: resumes from the end of epoch 0
    ("crash", 10, 3),    # resumes in the last epoch, from step 9
    ("sigterm", 6, None),  # pre-empted mid-epoch: the state after step 6 is saved and resumed
    ("sigterm", 8, None),  # pre-empted on the last batch of an epoch
])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_run(tokenizer, uninterrupted, tmp_path, how, step,
                                                                   every, one_thread):
    with pytest.raises(Crash if how == "crash" else SystemExit):
        _train(tokenizer, tmp_path, every, stop=StopAt(step, how))
    assert (tmp_path / LAST).is_file() and not list(tmp_path.glob(".*partial"))
    weights, steps = _train(tokenizer, tmp_path, every, ckpt_path=tmp_path / LAST)
    expected, expected_steps = uninterrupted
    assert steps == expected_steps == EPOCHS * STEPS_PER_EPOCH
    assert all(torch.equal(weights[k], expected[k]) for k in expected), "resumed weights differ"


@pytest.mark.parametrize("how, batches_after", [("crash", 0), ("sigterm", 0), ("sigterm", 1)])
def test_resume_with_gradient_accumulation(tokenizer, tmp_path, how, batches_after, one_thread):
    """Two batches a step: checkpoints fall on step boundaries, and a SIGTERM between the two batches of a
    step saves nothing (their gradients cannot be checkpointed), so the run resumes from the step before."""
    expected, steps = _train(tokenizer, tmp_path / "straight", accumulate=2)
    with pytest.raises(Crash if how == "crash" else SystemExit):
        _train(tokenizer, tmp_path, 1, stop=StopAt(3, how, batches_after), accumulate=2)
    # A crash lands before step 3 is saved; a SIGTERM saves step 3, but not the half of step 4 after it.
    assert torch.load(tmp_path / LAST, weights_only=True)["global_step"] == (2 if how == "crash" else 3)
    weights, resumed_steps = _train(tokenizer, tmp_path, 1, ckpt_path=tmp_path / LAST, accumulate=2)
    assert resumed_steps == steps == EPOCHS * STEPS_PER_EPOCH // 2
    assert all(torch.equal(weights[k], expected[k]) for k in expected)


def test_dropout_makes_the_random_state_matter(tokenizer, uninterrupted, tmp_path, one_thread):
    """Control for the test above: without RNGState, the same resume ends elsewhere."""
    with pytest.raises(Crash):
        _train(tokenizer, tmp_path, 3, stop=StopAt(7, "crash"))
    state = torch.load(tmp_path / LAST, weights_only=True)
    state["callbacks"].pop("RNGState")
    torch.save(state, tmp_path / "no_rng.ckpt")
    weights, _ = _train(tokenizer, tmp_path, 3, ckpt_path=tmp_path / "no_rng.ckpt")
    assert not all(torch.equal(weights[k], v) for k, v in uninterrupted[0].items())


# --- resuming `fit` runs ---------------------------------------------------------------------------

def _fit_args(tiny_cache, runs, name, *extra):
    return ["--config", TINY_CONFIG, f"run.cache_dir={tiny_cache}", f"run.output_dir={runs}", f"run.name={name}",
            "eval.enabled=false", "trainer.deterministic=true", "data.batch_size=1", "trainer.max_epochs=6",
            "run.checkpoint_every_n_steps=2", *extra]


def _snapshot(folder):
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


def _saved_step(checkpoint) -> int:
    # The file is replaced by a rename, so whenever it exists it is complete.
    return torch.load(checkpoint, weights_only=True)["global_step"] if checkpoint.exists() else -1


@pytest.mark.slow
def test_sigkilled_fit_resumes_to_the_weights_of_an_uninterrupted_run(tiny_cache, tmp_path, one_thread):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "unlearn", "fit", *_fit_args(tiny_cache, runs, "killed")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = runs / "killed" / "checkpoints" / LAST
    deadline = time.time() + 120
    # Kill once a mid-epoch checkpoint of the second epoch exists (5 steps an epoch, one every 2 steps).
    while proc.poll() is None and time.time() < deadline and _saved_step(checkpoint) < 7:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {err.decode()[-2000:]}"
    assert not (runs / "killed" / "model").exists()
    killed_at = _saved_step(checkpoint)

    assert main(["fit", *_fit_args(tiny_cache, runs, "killed"), "--resume"]) == 0
    assert main(["fit", *_fit_args(tiny_cache, runs, "straight")]) == 0
    resumed = load_file(runs / "killed" / "model" / "model.safetensors")
    straight = load_file(runs / "straight" / "model" / "model.safetensors")
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight), f"weights differ (killed at step {killed_at})"
    summary = (runs / "killed" / "summary.json").read_text()
    assert str(checkpoint) in summary and '"steps": 30' in summary
    assert not (runs / "killed" / "checkpoints").exists()  # removed once the model is saved


@pytest.mark.slow
def test_resume_reuses_the_folder_and_refuses_what_it_cannot_continue(tiny_cache, tmp_path, one_thread, capsys):
    runs = tmp_path / "runs"
    cfg = load_config([TINY_CONFIG], _fit_args(tiny_cache, runs, "done")[2:] + ["run.keep_checkpoint=true"])
    fit(cfg)
    finished = _snapshot(runs / "done")

    assert main(["fit", *_fit_args(tiny_cache, runs, "done"), "--resume"]) == 2
    assert "has already finished" in capsys.readouterr().err
    (runs / "stopped").mkdir()
    (runs / "stopped" / "config.yaml").write_text((runs / "done" / "config.yaml").read_text())
    stopped = _snapshot(runs / "stopped")
    assert main(["fit", *_fit_args(tiny_cache, runs, "stopped", "data.batch_size=2"), "--resume"]) == 2
    assert "data.batch_size: 1 -> 2" in capsys.readouterr().err
    assert main(["fit", *_fit_args(tiny_cache, runs, "typo"), "--resume"]) == 2
    assert "no run folder" in (err := capsys.readouterr().err) and "done, stopped" in err
    assert main(["fit", *_fit_args(tiny_cache, runs, "stopped")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert _snapshot(runs / "done") == finished and _snapshot(runs / "stopped") == stopped
    assert sorted(p.name for p in runs.iterdir()) == ["done", "stopped"]
    # Stopped before its first checkpoint: resuming starts it again, in the same folder.
    assert main(["fit", *_fit_args(tiny_cache, runs, "stopped"), "--resume"]) == 0
    assert (runs / "stopped" / "model").is_dir() and _snapshot(runs / "stopped").items() >= stopped.items()


def test_resume_options_are_checked_when_the_config_loads():
    with pytest.raises(ConfigError, match="run.resume=true and run.overwrite=true exclude each other"):
        load_config([], ["run.resume=true", "run.overwrite=true", "run.name=x"])
    with pytest.raises(ConfigError, match="run.resume=true needs run.name"):
        load_config([], ["run.resume=true"])


class TableReference:
    """A reference with computed state, like a log-prob cache: it fills its table at setup unless restored."""

    def __init__(self):
        self.table, self.computed = None, False

    def setup(self, module):
        if self.table is None:
            self.table, self.computed = torch.zeros(len(QA)), True

    def sequence_logps(self, inputs, split):
        return self.table[inputs["index"]] - 5.0

    def state_dict(self):
        return {"table": self.table}

    def load_state_dict(self, state):
        self.table = state["table"]


def test_reference_state_is_saved_with_the_checkpoint_and_back_before_setup(tokenizer, tmp_path, one_thread):
    def run(reference, epochs, ckpt_path=None):
        module = UnlearningModule(tiny_model(tokenizer, hidden_size=16, num_hidden_layers=1, intermediate_size=32),
                                  build_loss("npo"), reference, lr=1e-3, warmup_epochs=0.0)
        dm = UnlearningDataModule(QA[:4], QA[4:], [], tokenizer, batch_size=2, uses_retain=False)
        L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                  enable_model_summary=False, plugins=[AtomicCheckpointIO()],
                  callbacks=[LastCheckpoint(tmp_path)]).fit(module, datamodule=dm, ckpt_path=ckpt_path)

    first, resumed = TableReference(), TableReference()
    run(first, 1)
    assert first.computed
    run(resumed, 2, tmp_path / LAST)
    assert not resumed.computed and torch.equal(resumed.table, first.table)


@pytest.mark.slow
def test_sigterm_saves_the_state_and_exits_with_143(tiny_cache, tmp_path):
    runs = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "unlearn", "fit", *_fit_args(tiny_cache, runs, "preempted")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    checkpoint = runs / "preempted" / "checkpoints" / LAST
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline and _saved_step(checkpoint) < 3:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    assert proc.returncode == 143, err.decode()[-2000:]
    assert "stopped by SIGTERM" in err.decode() and "--resume" in err.decode()
    assert _saved_step(checkpoint) >= 3 and not (runs / "preempted" / "model").exists()
