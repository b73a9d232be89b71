"""The command line end to end on a tiny built-in config: run folder, model, logs, refusal to overwrite."""

import json
import math
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForCausalLM

from tests.helpers import TINY_CONFIG
from unlearn.cli import main
from unlearn.data.sources import load_split
from unlearn.reporting.question_ci import question_intervals, read_selected_eval

pytestmark = pytest.mark.slow


def _args(tmp_path, *extra):
    return ["--config", TINY_CONFIG, f"run.cache_dir={tmp_path / 'cache'}", f"run.output_dir={tmp_path / 'runs'}",
            "run.name=demo", *extra]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    assert main(["fit", *_args(tmp)]) == 0
    return tmp


def test_fit_writes_a_complete_run_folder(run):
    run_dir = run / "runs" / "demo"
    model = AutoModelForCausalLM.from_pretrained(run_dir / "model")
    assert model.config.model_type == "llama"
    assert (run_dir / "model" / "model.safetensors").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert "name: npo_rt" in (run_dir / "config.yaml").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["nll_before"]) == {"forget", "retain"} and summary["steps"] > 0
    assert summary["model_dir"] == str(run_dir / "model")
    # The selected epoch's per-question values, with the retain model's, for intervals over questions.
    selected = read_selected_eval(run_dir, summary["evaluation"]["selected_epoch"])
    assert selected is not None and selected["result"]["summary"] == summary["evaluation"]["unlearned"]
    intervals = question_intervals(selected)
    assert intervals["forget quality"]["value"] == summary["evaluation"]["unlearned"]["forget/forget_quality"]
    low, high = intervals["model utility"]["ci"]
    assert 0 <= low <= intervals["model utility"]["value"] <= high <= 1
    assert summary["evaluation"]["question_ci"] == json.loads(json.dumps(intervals))  # also in summary.json
    assert "95% intervals over the questions" in (run_dir / "summary.md").read_text()


def test_builtin_models_are_cached_and_reused(run, capsys):
    models = list((run / "cache" / "models").glob("builtin-*"))
    assert len(models) == 1 and {"target", "retain90", "tokenizer"} <= {p.name for p in models[0].iterdir()}
    stamp = (models[0] / "target" / "model.safetensors").stat().st_mtime_ns
    assert main(["fit", *_args(run, "run.name=again")]) == 0
    assert (models[0] / "target" / "model.safetensors").stat().st_mtime_ns == stamp


def test_bf16_run_trains_evaluates_and_saves_bf16_weights(run):
    # The bf16 path without a GPU: weights, the cached reference log-probs and evaluation in bfloat16.
    from safetensors.torch import load_file

    assert main(["fit", *_args(run, "run.name=bf16", "trainer.precision=bf16-true", "model.dtype=bfloat16",
                                "trainer.max_epochs=2", "eval.max_rows=8")]) == 0
    run_dir = run / "runs" / "bf16"
    assert {v.dtype for v in load_file(run_dir / "model" / "model.safetensors").values()} == {torch.bfloat16}
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] > 0 and summary["evaluation"]["selected_epoch"] in (1, 2)
    assert all(math.isfinite(v) for v in summary["nll_after"].values())


def test_existing_run_folder_is_never_overwritten(run, capsys):
    run_dir = run / "runs" / "demo"
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    assert main(["fit", *_args(run)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert before == {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}


def test_misspelt_key_exits_with_a_message(capsys, tmp_path):
    assert main(["fit", *_args(tmp_path, "loss.bta=1")]) == 2
    assert "Did you mean 'loss.beta'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_unknown_model_path_is_a_clear_error(capsys, tmp_path):
    assert main(["fit", *_args(tmp_path, f"model.path={tmp_path / 'nope'}")]) == 1
    assert "Cannot load" in capsys.readouterr().err


def test_data_command_writes_tofu_layout(tmp_path, tofu_dir):
    out = tmp_path / "bench"
    assert main(["data", "--out", str(out), "data.builtin.num_authors=5"]) == 0
    assert {p.name for p in out.iterdir()} >= {p.name for p in tofu_dir.iterdir() if p.suffix in (".json", ".jsonl")}
    assert len(load_split(out, "full")) == 50


def test_python_dash_m_entry_point(tmp_path):
    out = subprocess.run([sys.executable, "-m", "unlearn", "fit", "--show-config", "loss.name=npo"],
                         capture_output=True, text=True, check=True).stdout
    assert "name: npo" in out
