"""``python -m unlearn grid``: paper settings per loss, a tiny 2 x 1 grid run and collected, finished runs skipped."""

import csv
import subprocess
import sys

import pytest

from unlearn.config.loading import configs_dir, load_config
from unlearn.experiments.grid import PAPER_LOSSES, PAPER_SPLITS, paper_loss_settings


def test_paper_settings_give_each_loss_only_what_it_takes():
    assert paper_loss_settings("ga", "forget10") == {"name": "ga"}
    assert paper_loss_settings("npo_rt", "forget01") == {"name": "npo_rt", "beta": 0.1, "c_npo": 1.0, "c_rt": 1.0}
    assert paper_loss_settings("simnpo", "forget10")["beta"] == 4.5
    assert paper_loss_settings("simnpo", "forget05")["beta"] == 2.5


def test_the_27_experiment_files_load_on_the_paper_base():
    for split in PAPER_SPLITS:
        for loss in PAPER_LOSSES:
            cfg = load_config(["experiment/tofu_llama2", f"experiment/tofu_llama2_{split}_{loss}"])
            assert (cfg.loss.name, cfg.data.forget_split, cfg.optim.lr) == (loss, split, 1e-5)
            assert cfg.data.batch_size * cfg.optim.accumulate_grad_batches == 32
    assert len(list(configs_dir().glob("experiment/tofu_llama2_forget*.yaml"))) == 27


@pytest.mark.slow
def test_tiny_grid_runs_collects_and_skips_finished_runs(tmp_path, tiny_cache):
    out = tmp_path / "grid"
    command = [sys.executable, "-m", "unlearn", "grid", "--config", "model/tiny", "--losses", "ga,npo",
               "--splits", "forget10", "--out", str(out), f"run.cache_dir={tiny_cache}",
               "trainer.accelerator=cpu", "eval.max_rows=4", "eval.max_new_tokens=4"]
    env_run = dict(cwd=tmp_path, capture_output=True, text=True, timeout=300)
    first = subprocess.run(command, **env_run)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = list(csv.DictReader(open(out / "grid.csv")))
    assert [r["run"] for r in rows] == ["ga_forget10", "npo_forget10"]
    assert all(r["status"] == "done" and r["forget quality"] and r["selected epoch"] for r in rows)
    assert "| ga_forget10 | ga | forget10 |" in (out / "grid.md").read_text()

    again = subprocess.run(command, **env_run)
    assert again.returncode == 0 and again.stdout.count("finished earlier, skipped") == 2
