"""Training under DDP and FSDP: 2 CPU processes (gloo) end where 1 process with the same global batch ends.

The runs use the settings a user gets from the README (progress bar, evaluation every epoch,
best-epoch selection and the collapse stop all on), shrinking only the sizes.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from unlearn.names import mia_key
import torch
from safetensors.torch import load_file

from tests.helpers import TINY_CONFIG
from unlearn.errors import ConfigError
from unlearn.training.distributed import RUN_DIR_ENV, check_strategy, launched_run_dir, strategy_name

# 20 authors x 4 questions: forget10 holds 8 rows, two global batches of 4 a epoch. A row count
# divisible by the global batch matters: the sampler pads a short last batch differently per world size.
TINY = ["--config", TINY_CONFIG, "loss.name=npo", "loss.beta=0.1", "data.builtin.num_authors=20",
        "data.builtin.questions_per_author=4", "trainer.max_epochs=2", "trainer.accelerator=cpu",
        "eval.max_rows=6", "eval.max_new_tokens=4", "eval.batch_size=4", "trainer.deterministic=true"]


def _env() -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", RUN_DIR_ENV):
        env.pop(variable, None)
    return env


def _fit_command(tmp_path: Path, name: str, *overrides: str, launcher: tuple[str, ...] = ("-m", "unlearn")) -> list:
    return [sys.executable, *launcher, "fit", *TINY, f"run.cache_dir={tmp_path / 'cache'}",
            f"run.output_dir={tmp_path / 'runs'}", *([f"run.name={name}"] if name else []), *overrides]


def _fit(tmp_path: Path, name: str, *overrides: str, launcher: tuple[str, ...] = ("-m", "unlearn")) -> Path:
    command = _fit_command(tmp_path, name, *overrides, launcher=launcher)
    done = subprocess.run(command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # What a user sees: the progress bar (only rank 0 draws it, which once hung multi-process runs).
    assert "Epoch" in done.stdout + done.stderr
    return tmp_path / "runs" / name if name else tmp_path / "runs"


def _assert_same_run(single: Path, other: Path) -> None:
    """Same saved weights, steps, evaluation history and selected epoch."""
    one, two = load_file(single / "model" / "model.safetensors"), load_file(other / "model" / "model.safetensors")
    assert one.keys() == two.keys()
    for name in one:
        assert (one[name] - two[name]).abs().max() < 1e-5, name
    start = load_file(json.loads((single / "summary.json").read_text())["target_model"] + "/model.safetensors")
    assert any((start[n] - one[n]).abs().max() > 1e-4 for n in one), "training moved no weight"

    summaries = [json.loads((run / "summary.json").read_text()) for run in (single, other)]
    assert summaries[0]["steps"] == summaries[1]["steps"] == 4
    history = [s["evaluation"]["history"] for s in summaries]
    assert len(history[0]) == len(history[1]) == 3  # before training and after each epoch
    sharded = any("sharded" in line for line in summaries[1]["evaluation"]["unavailable"])
    for a, b in zip(*history):
        for key, value in a.items():
            if key == mia_key("gradnorm") and sharded:
                # No gradients of sharded weights: said in the summary, never a made-up number.
                assert b[key] is None
            elif isinstance(value, float):
                assert b[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert summaries[0]["evaluation"]["selected_epoch"] == summaries[1]["evaluation"]["selected_epoch"]
    assert summaries[0]["nll_after"] == pytest.approx(summaries[1]["nll_after"], rel=1e-4)


@pytest.mark.slow
def test_two_ddp_processes_match_one_process_with_the_same_global_batch(tmp_path):
    single = _fit(tmp_path, "single", "trainer.devices=1", "data.batch_size=4")
    # No run.name: the timestamped default must be chosen once, by rank 0, for both processes.
    runs = _fit(tmp_path, "", "trainer.strategy=ddp", "trainer.devices=2", "data.batch_size=2")
    _assert_same_run(single, next(p for p in runs.iterdir() if p.name != "single"))


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [
    # The final weights are gathered and saved after training; the gradient norm is clipped over all shards.
    ("eval.selection=last", "optim.gradient_clip_val=0.05"),
    # the best epoch's weights are gathered when it is evaluated; adapters merged into a CPU copy
    ("model.lora.enabled=true", "model.lora.r=4", "optim.lr=1e-3"),
], ids=["final-save", "lora-best-epoch"])
def test_two_fsdp_processes_match_one_process_and_save_whole_weights(tmp_path, overrides):
    # Each rank holds half of every decoder layer, so evaluation (each rank generating for its own
    # questions), the NLL probe, the reference cache and saving all gather whole weights first.
    single = _fit(tmp_path, "single", "trainer.devices=1", "data.batch_size=4", *overrides)
    fsdp = _fit(tmp_path, "fsdp", "trainer.strategy=fsdp", "trainer.devices=2", "data.batch_size=2", *overrides)
    _assert_same_run(single, fsdp)


# Resuming under FSDP (a killed run, its reference cache file deleted): tests/test_fsdp_resume.py.


def test_launched_rank_reuses_rank_zero_run_folder(monkeypatch, tmp_path):
    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", RUN_DIR_ENV):
        monkeypatch.delenv(variable, raising=False)
    assert launched_run_dir(None, str(tmp_path)) is None  # the starting process picks the folder itself
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launched_run_dir(None, str(tmp_path)) is None  # rank 0 after launch is still the starting process
    monkeypatch.setenv("LOCAL_RANK", "1")
    with pytest.raises(ConfigError, match="run.name"):
        launched_run_dir(None, str(tmp_path))
    assert launched_run_dir("r", str(tmp_path)) == tmp_path / "r"
    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path / "shared"))
    assert launched_run_dir("other", str(tmp_path)) == tmp_path / "shared"


def test_strategy_families_and_missing_deepspeed_is_a_clear_error():
    assert strategy_name("deepspeed_stage_3") == "deepspeed" and strategy_name("fsdp") == "fsdp"
    assert strategy_name("ddp_spawn") == "ddp" and strategy_name("auto") == "auto"
    check_strategy("ddp")
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"pip install -e '\.\[deepspeed\]'"):
            check_strategy("deepspeed_stage_3")


@pytest.mark.parametrize("strategy", ["fsdp", "deepspeed_stage_3"])
def test_sharded_strategies_take_the_cache_and_refuse_a_resident_reference_model(strategy):
    from unlearn.losses import build_loss
    from unlearn.reference.setup import resolve_reference_mode

    assert resolve_reference_mode("auto", build_loss("npo"), strategy=strategy) == "cache"
    assert resolve_reference_mode("auto", build_loss("npo_kl"), lora=True, strategy=strategy) == "adapter"
    with pytest.raises(ConfigError, match="not sharded.*reference.mode=cache"):
        resolve_reference_mode("model", build_loss("npo"), strategy=strategy)
    with pytest.raises(ConfigError, match="full next-token distribution.*model.lora.enabled=true"):
        resolve_reference_mode("auto", build_loss("kl"), strategy=strategy)
    assert resolve_reference_mode("model", build_loss("kl"), strategy="ddp") == "model"


def test_fsdp_strategy_shards_each_decoder_layer():
    from lightning.pytorch.strategies import FSDPStrategy
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    from tests.helpers import tiny_model, tiny_tokenizer
    from unlearn.training.sharding import build_strategy, is_sharded

    policy = tiny_model(tiny_tokenizer())
    assert build_strategy("auto", policy) == "auto"
    strategy = build_strategy("fsdp", policy, gradient_checkpointing=True)
    assert isinstance(strategy, FSDPStrategy)
    # Lightning's plain "fsdp" would wrap the whole model as one unit, gathered whole at every forward.
    assert strategy.kwargs["auto_wrap_policy"]._module_classes == {LlamaDecoderLayer}
    assert strategy._activation_checkpointing_kwargs["auto_wrap_policy"]._module_classes == {LlamaDecoderLayer}
    assert strategy.cpu_offload.offload_params is False
    assert build_strategy("fsdp_cpu_offload", policy).cpu_offload.offload_params is True
    with pytest.raises(ConfigError, match="fsdp, fsdp_cpu_offload"):
        build_strategy("fsdp_hybrid", policy)
    with pytest.raises(ConfigError, match="no decoder layer class"):
        build_strategy("fsdp", torch.nn.Sequential(torch.nn.Linear(2, 2)))
    assert not is_sharded(None)


STALL_RANK = str(Path(__file__).with_name("stall_rank.py"))
DDP = ("trainer.strategy=ddp", "trainer.devices=2", "data.batch_size=2")


def _no_process_left(marker: str) -> bool:
    found = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    return not [pid for pid in found.stdout.split() if int(pid) != os.getpid()]


def _resume_command_in(stderr: str) -> list[str]:
    line = next(line.strip() for line in stderr.splitlines() if line.strip().startswith("python -m unlearn fit"))
    words = shlex.split(line)
    assert words[:3] == ["python", "-m", "unlearn"] and words[-1] == "--resume"
    return [sys.executable, *words[1:]]


@pytest.mark.slow
def test_a_rank_that_stops_taking_part_ends_the_run_with_the_timeout_message_and_the_resume_command(tmp_path):
    # Rank 1 sleeps when epoch 1 starts; rank 0 waits for it in the next collective until the timeout.
    env = {**_env(), "UNLEARN_TEST_STALL": "1:1"}
    command = _fit_command(tmp_path, "stuck", *DDP, "trainer.collective_timeout_s=8", launcher=(STALL_RANK,))
    start = time.time()
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    waited = time.time() - start
    assert done.returncode == 1, done.stderr[-3000:]
    run = tmp_path / "runs" / "stuck"
    assert "rank 1 stalls at epoch 1" in done.stderr
    assert "did not complete within trainer.collective_timeout_s=8 s" in done.stderr
    assert f"last checkpoint is {run / 'checkpoints' / 'last.ckpt'}" in done.stderr
    assert "Traceback" not in done.stderr
    assert _no_process_left(str(tmp_path / "cache")), "a rank outlived the failed run"
    assert waited < 120
    # The printed command continues the run (in its folder, from the epoch-1 checkpoint) to the end.
    resumed = subprocess.run(_resume_command_in(done.stderr), cwd=tmp_path, env=_env(), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["resumed_from"].endswith("last.ckpt")
    assert [r["epoch"] for r in summary["evaluation"]["history"]] == [0, 1, 2]


@pytest.mark.slow
def test_sigterm_stops_a_run_whose_process_waits_in_a_collective(tmp_path):
    # The timeout is far away: only SIGTERM can end the wait, and Python's own handler cannot run
    # while the main thread is blocked in the collective.
    env = {**_env(), "UNLEARN_TEST_STALL": "1:1"}
    command = _fit_command(tmp_path, "term", *DDP, "trainer.collective_timeout_s=600", launcher=(STALL_RANK,))
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    stderr = []
    for line in proc.stderr:  # wait until rank 1 has stopped taking part
        stderr.append(line)
        if "rank 1 stalls" in line:
            break
    time.sleep(2)  # rank 0 is now inside its next collective
    sent = time.time()
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=120)
    stderr = "".join(stderr) + rest
    assert proc.returncode == 143, stderr[-3000:]
    assert time.time() - sent < 60
    assert "stopped by SIGTERM while this process was waiting for the other processes" in stderr
    assert "--resume" in stderr and (tmp_path / "runs" / "term" / "checkpoints" / "last.ckpt").is_file()
    assert _no_process_left(str(tmp_path / "cache")), "a rank outlived the stopped run"


def test_multi_process_runs_get_a_strategy_with_the_configured_timeout():
    from datetime import timedelta

    from lightning.pytorch.strategies import DDPStrategy

    from tests.helpers import tiny_model, tiny_tokenizer
    from unlearn.training.distributed import is_multi_process
    from unlearn.training.sharding import build_strategy

    policy = tiny_model(tiny_tokenizer())
    ddp = build_strategy("ddp", policy, timeout_s=42)
    assert isinstance(ddp, DDPStrategy) and ddp._timeout == timedelta(seconds=42)
    assert build_strategy("ddp_find_unused_parameters_true", policy, timeout_s=5)._ddp_kwargs == \
        {"find_unused_parameters": True}
    assert build_strategy("fsdp", policy, timeout_s=7)._timeout == timedelta(seconds=7)
    # "auto" stays Lightning's choice on one process and becomes DDP (with the timeout) on several.
    assert build_strategy("auto", policy) == "auto"
    assert build_strategy("auto", policy, timeout_s=9, multi_process=True)._timeout == timedelta(seconds=9)
    assert [is_multi_process(d, 1) for d in (1, 2, "2", [0, 1], [3], "0,1", "auto", -1)] == \
        [False, True, True, True, False, True, False, False]
    assert is_multi_process(1, 2)


def test_collective_failures_are_recognised_and_other_errors_are_not():
    from unlearn.training.distributed import is_collective_failure

    assert is_collective_failure(RuntimeError("[gloo/unbound_buffer.cc:78] Timed out waiting 3000ms for recv"))
    assert is_collective_failure(RuntimeError("[gloo/pair.cc:553] Connection closed by peer [127.0.0.1]:5"))
    assert not is_collective_failure(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_collective_failure(ValueError("timed out"))
