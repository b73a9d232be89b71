"""``python -m unlearn grid``: paper settings per loss, a tiny 2 x 1 grid run and collected, finished runs skipped."""

import csv
import subprocess
import sys

import pytest

from tests.helpers import TINY_CONFIG
from unlearn.config.loading import configs_dir, load_config, read_config_file
from unlearn.experiments.grid import PAPER_SPLITS, fit_command, paper_loss_file, paper_loss_settings
from unlearn.names import LOSS_NAMES
from unlearn.losses import LOSSES


def test_paper_settings_give_each_loss_only_what_it_takes():
    assert paper_loss_settings("ga", "forget10") == {"name": "ga"}
    assert paper_loss_settings("npo_rt", "forget01") == {"name": "npo_rt", "beta": 0.1, "c_npo": 1.0, "c_rt": 1.0}
    for loss in LOSS_NAMES:
        settings = paper_loss_settings(loss, "forget10")
        assert settings["name"] == loss and set(settings) - {"name"} <= set(LOSSES[loss].hparam_names()), loss


def test_simnpo_takes_its_authors_settings_per_split():
    # docs/definitions.md, "Paper settings": beta 2.5 (forget01/05) / 4.5 (forget10), c_npo 0.1375 (forget05) / 0.125
    # (forget10).
    common = {"name": "simnpo", "gamma": 0.0, "c_rt": 1.0}
    assert paper_loss_settings("simnpo", "forget10") == {**common, "beta": 4.5, "c_npo": 0.125}
    assert paper_loss_settings("simnpo", "forget05") == {**common, "beta": 2.5, "c_npo": 0.1375}
    assert paper_loss_settings("simnpo", "forget01") == paper_loss_settings("simnpo", "forget05")


def test_grid_settings_are_the_loss_yamls():
    for split in PAPER_SPLITS:
        for loss in LOSS_NAMES:
            name = paper_loss_file(loss, split)
            assert name in (f"loss/{loss}", f"loss/{loss}_{split}")
            assert paper_loss_settings(loss, split) == read_config_file(name)["loss"]
            # The same values as selecting the group on the command line.
            by_group = load_config([], [f"loss={name.split('/')[1]}"]).loss
            assert {k: getattr(by_group, k) for k in paper_loss_settings(loss, split)} == paper_loss_settings(loss, split)
    per_split = sorted(p.stem for p in (configs_dir() / "loss").glob("*_forget*.yaml"))
    assert per_split == ["simnpo_forget01", "simnpo_forget05"]


def test_non_simnpo_settings_are_the_npo_papers():
    # beta 0.1 and every coefficient 1.0, for what each strategy takes (docs/definitions.md, "Paper settings"),
    # the NPO code's KL scale (B x max_length) and its one token mean over the IDK and retain batches.
    for loss in LOSS_NAMES:
        if loss == "simnpo":
            continue
        taken = LOSSES[loss].hparam_names()
        expected = {"name": loss, **{k: 0.1 for k in ("beta",) if k in taken},
                    **{k: 1.0 for k in ("c_forget", "c_npo", "c_rt", "c_kl") if k in taken},
                    **({"kl_mask": "padded"} if "kl_mask" in taken else {}),
                    **({"idk_mean": "joint"} if "idk_mean" in taken else {})}
        for split in PAPER_SPLITS:
            assert paper_loss_settings(loss, split) == expected, (loss, split)


def test_every_grid_run_loads_on_the_paper_experiment(tmp_path):
    for split in PAPER_SPLITS:
        for loss in LOSS_NAMES:
            command = fit_command(["experiment/tofu_llama2"], loss, split, tmp_path, [])
            configs = [command[i + 1] for i, arg in enumerate(command) if arg == "--config"]
            overrides = command[command.index("fit") + 1 + 2 * len(configs):]
            cfg = load_config(configs, overrides)
            assert (cfg.loss.name, cfg.data.forget_split, cfg.optim.lr) == (loss, split, 1e-5)
            assert cfg.data.batch_size * cfg.optim.accumulate_grad_batches == 32
            assert (cfg.model.path, cfg.data.source, cfg.data.max_length) == ("locuslab/tofu_ft_llama2-7b", "tofu", 500)
    assert not list(configs_dir().glob("experiment/tofu_llama2_forget*.yaml"))  # the grid computes them


def test_one_grid_run_by_hand_equals_the_grid_command(tmp_path):
    command = fit_command(["experiment/tofu_llama2"], "npo", "forget05", tmp_path, [])
    grid = load_config(["experiment/tofu_llama2"], command[command.index("fit") + 3:])
    by_hand = load_config(["experiment/tofu_llama2"], ["loss=npo", "data.forget_split=forget05",
                                                       f"run.output_dir={tmp_path}", "run.name=npo_forget05"])
    assert by_hand == grid


@pytest.mark.slow
def test_tiny_grid_runs_collects_and_skips_finished_runs(tmp_path, tiny_cache):
    out = tmp_path / "grid"
    command = [sys.executable, "-m", "unlearn", "grid", "--config", TINY_CONFIG, "--losses", "ga,npo",
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
