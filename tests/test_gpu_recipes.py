"""Every shipped sweep file and recipe loads, expands and validates (no model loaded); the GPU recipes of
open-unlearning's TOFU reproduction (configs/reproduce/tofu_llama2_7b.yaml, tofu_llama32_1b.yaml) run what
open-unlearning ran, their bands follow the rule their header states from the repro.md cells their comments quote,
and a recipe that needs a GPU is refused before anything starts on a machine without one."""

import math
import re

import pytest
import yaml

from tests.test_sweep_runner import FakeFit, fake_summary
from unlearn.cli import main
from unlearn.config.loading import configs_dir, read_config_file
from unlearn.experiments.collect import run_metrics
from unlearn.experiments.reproduce import load_recipe, recipe_sweep
from unlearn.experiments.runner import load_run_config
from unlearn.experiments.sweep_file import SweepFileError, load_sweep, parse_sweep

SWEEPS = sorted(p.stem for p in (configs_dir() / "sweep").glob("*.yaml"))
RECIPES = sorted(p.stem for p in (configs_dir() / "reproduce").glob("*.yaml"))
GPU_RECIPES = {"tofu_llama2_7b": "Llama-2-7b-chat-hf", "tofu_llama32_1b": "Llama-3.2-1B-Instruct"}
# open-unlearning's methods (docs/repro.md rows) as this project's strategies, in the sweeps' order.
METHODS = {"GradAscent": "ga", "GradDiff": "grad_diff", "IdkDPO": "dpo", "NPO": "npo_rt", "SimNPO": "simnpo",
           "RMU": "rmu"}
SPLITS = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
METRICS = set(run_metrics(fake_summary(0.5, 0.7)))  # what results.json names (TOFU)


@pytest.mark.parametrize("name", SWEEPS)
def test_every_shipped_sweep_file_expands_into_runs_that_validate(name):
    sweep = load_sweep(name)
    runs = sweep.runs()
    assert runs and len({r.name for r in runs}) == len(runs)
    for config in sweep.configs:
        assert (configs_dir() / f"{config}.yaml").is_file(), config
    for run in runs:
        load_run_config(sweep, run)  # the loaded and validated configuration, as `fit` gets it


@pytest.mark.parametrize("name", RECIPES)
def test_every_shipped_recipe_has_well_formed_bands_on_settings_and_metrics_its_sweep_has(name):
    recipe, path = load_recipe(name)
    sweep = recipe_sweep(recipe, path)
    assert set(recipe["bands"]) <= {r.point for r in sweep.runs()}
    for setting, metrics in recipe["bands"].items():
        assert metrics and set(metrics) <= METRICS, (setting, set(metrics) - METRICS)
        for low, high in metrics.values():
            assert math.isfinite(low) and math.isfinite(high) and low <= high
    assert ("gpu" in sweep.requires) == (name in GPU_RECIPES)


@pytest.mark.parametrize("name, model", GPU_RECIPES.items())
def test_gpu_sweeps_run_open_unlearnings_methods_at_its_settings(name, model):
    sweep = load_sweep(name)
    runs = sweep.runs()
    assert [r.name for r in runs] == [f"{loss}_{split}" for loss in METHODS.values() for split in SPLITS]
    assert sweep.requires == ("gpu",)
    for run in runs:
        loss, split = run.point.rsplit("_", 1)
        cfg = load_run_config(sweep, run)
        assert (cfg.model.path, cfg.model.retain_path) == (f"open-unlearning/tofu_{model}_full",
                                                           f"open-unlearning/tofu_{model}_{SPLITS[split]}")
        assert (cfg.data.source, cfg.data.path, cfg.data.forget_split, cfg.data.max_length) == (
            "tofu", "locuslab/TOFU", split, 512)
        # repro.md: lr 1e-5, effective batch 32, 10 epochs; configs/experiment/unlearn/tofu/default.yaml: weight
        # decay 0.01, one warm-up epoch. Evaluated as open-unlearning does: the last epoch, no early stop.
        assert (cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.warmup_epochs, cfg.trainer.max_epochs) == (
            1e-5, 0.01, 1.0, 10)
        assert cfg.data.batch_size * cfg.optim.accumulate_grad_batches * cfg.trainer.devices == 32
        assert (cfg.eval.selection, cfg.eval.collapse_fraction, cfg.eval.every_n_epochs) == ("last", 0.0, 10)
        assert (cfg.trainer.accelerator, cfg.trainer.precision, cfg.model.dtype) == ("gpu", "bf16-true", "bfloat16")
        # Each strategy at its group's settings (SimNPO: open-unlearning's one setting, forget10's, on every split);
        # IdkDPO is DPO with the retain NLL.
        settings = read_config_file(f"loss/{loss}")["loss"]
        assert {k: getattr(cfg.loss, k) for k in settings} == settings, run.name
        assert cfg.loss.retain == ("nll" if loss == "dpo" else None)
    by_loss = {r.point: load_run_config(sweep, r).loss for r in runs if r.point.endswith("forget05")}
    assert (by_loss["simnpo_forget05"].beta, by_loss["simnpo_forget05"].c_npo) == (4.5, 0.125)
    assert (by_loss["npo_rt_forget05"].beta, by_loss["npo_rt_forget05"].c_npo, by_loss["npo_rt_forget05"].c_rt) == (
        0.1, 1.0, 1.0)
    assert (by_loss["dpo_forget05"].beta, by_loss["dpo_forget05"].c_rt) == (0.1, 1.0)
    rmu = by_loss["rmu_forget05"]
    assert (rmu.layer, rmu.steering_coeff, rmu.alpha, rmu.c_forget, rmu.trainable_params) == (7, 2.0, 1.0, 1.0, "all")


def test_prompt_formats_follow_open_unlearnings_model_configs():
    llama2 = load_run_config(load_sweep("tofu_llama2_7b"), load_sweep("tofu_llama2_7b").runs()[0])
    assert llama2.model.prompt_format == "llama2"  # "[INST] q [/INST]" then the answer, no space
    llama3 = load_run_config(load_sweep("tofu_llama32_1b"), load_sweep("tofu_llama32_1b").runs()[0])
    assert (llama3.model.prompt_format, llama3.model.chat_template_kwargs) == ("chat_template",
                                                                                {"date_string": "10 Apr 2025"})


def test_seeds_on_the_command_line_repeat_each_setting(capsys):
    sweep = load_sweep("tofu_llama32_1b", seeds=[1001, 1002, 1003])
    runs = sweep.runs()
    assert len(runs) == 54 and runs[0].name == "ga_forget01_seed1001" and runs[2].name == "ga_forget01_seed1003"
    cfg = load_run_config(sweep, runs[2])
    assert (cfg.run.seed, cfg.data.seed) == (1003, 1003)
    assert main(["sweep", "tofu_llama32_1b", "--seeds", "1001,1002,1003", "--dry-run", "--only", "npo_rt_*"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 9 and all("--config experiment/tofu_llama32_1b" in line for line in printed)
    assert "run.name=npo_rt_forget05_seed1002" in printed[4] and "model.retain_path=open-unlearning/" in printed[4]


def _band(value, metric):
    """The header's rule: a forget quality v to 10^-w .. 10^w (w = max(1, round(|log10 v| / 4))), capped at 1;
    model utility and the forget truth ratio +- 0.10, the target's utility +- 0.05, rounded outward to two decimals
    and within [0, 1]."""
    if "forget quality" in metric:
        w = max(1, round(abs(math.log10(value)) / 4))
        return value * 10.0 ** -w, min(1.0, value * 10.0 ** w)
    d = 0.05 if metric.startswith("target") else 0.10
    return (max(0.0, math.floor(round((value - d) * 100, 6)) / 100),
            min(1.0, math.ceil(round((value + d) * 100, 6)) / 100))


@pytest.mark.parametrize("name", GPU_RECIPES)
def test_gpu_bands_follow_the_stated_rule_from_the_quoted_repro_cells(name):
    recipe, path = load_recipe(name)
    text = path.read_text()
    cells = re.findall(r"^  (\w+):  # (\w+) row, (forget\d\d): FQ (\S+), MU (\S+), forget TR (\S+)$", text, re.M)
    targets = re.findall(r"^    target forget quality: \[.*\]  # Finetuned row, (forget\d\d): FQ (\S+), MU (\S+)$",
                         text, re.M)
    assert len(cells) == 18 == len(recipe["bands"]) and len(targets) == 3
    for setting, method, split, fq, mu, tr in cells:
        assert setting == f"{METHODS[method]}_{split}"
        quoted = {"forget quality": fq, "model utility": mu, "forget/truth_ratio": tr}
        for metric, value in quoted.items():
            assert recipe["bands"][setting][metric] == pytest.approx(_band(float(value), metric), rel=0.01,
                                                                     abs=1e-9), (setting, metric)
    for split, fq, mu in targets:  # the Finetuned row, checked once per split on ga_<split>
        bands = recipe["bands"][f"ga_{split}"]
        assert bands["target forget quality"] == pytest.approx(_band(float(fq), "target forget quality"), rel=0.01)
        assert bands["target model utility"] == pytest.approx(_band(float(mu), "target model utility"), abs=1e-9)


def test_the_bands_hold_hand_worked_cells():
    # Llama-2-7b, NPO on forget10: repro.md 0.42 / 0.54 / 0.73; GradAscent on forget05: FQ 1.94e-119 (w = 30).
    bands = load_recipe("tofu_llama2_7b")[0]["bands"]
    assert bands["npo_rt_forget10"] == {"forget quality": [0.042, 1.0], "model utility": [0.44, 0.64],
                                        "forget/truth_ratio": [0.63, 0.83]}
    assert bands["ga_forget05"]["forget quality"] == [1.94e-149, 1.94e-89]
    assert bands["ga_forget05"]["model utility"] == [0.0, 0.1]
    # Llama-3.2-1B, the target on forget01: FQ 0.01, MU 0.6.
    one = load_recipe("tofu_llama32_1b")[0]["bands"]["ga_forget01"]
    assert (one["target forget quality"], one["target model utility"]) == ([0.001, 0.1], [0.55, 0.65])


@pytest.mark.parametrize("text, message", [("requires: tpu\n", "'requires' takes gpu"),
                                           ("requires: {gpu: 1}\n", "'requires' takes gpu")])
def test_requires_takes_only_gpu(tmp_path, text, message):
    with pytest.raises(SweepFileError, match=message):
        parse_sweep(yaml.safe_load(text), tmp_path / "s.yaml")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"runs: {{}}\n{text}bands: {{default: {{steps: [0, 1]}}}}\n")
    with pytest.raises(SweepFileError, match=message):
        load_recipe(str(recipe))


def test_a_recipe_or_its_sweep_file_can_require_a_gpu(tmp_path):
    assert parse_sweep({"requires": ["gpu"]}, tmp_path / "s.yaml").requires == ("gpu",)
    assert parse_sweep({}, tmp_path / "s.yaml").requires == ()
    for text in ("runs: {requires: gpu}\n", "runs: {}\nrequires: gpu\n", "runs: {requires: gpu}\nrequires: gpu\n"):
        path = tmp_path / "r.yaml"
        path.write_text(text + "bands: {default: {steps: [0, 1]}}\n")
        assert recipe_sweep(*load_recipe(str(path))).requires == ("gpu",)


def test_a_gpu_recipe_is_refused_on_a_cpu_before_anything_starts(tmp_path, monkeypatch, capsys):
    fake = FakeFit()
    monkeypatch.setattr("unlearn.experiments.runner.launch_logged", fake)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "out"
    assert main(["reproduce", "tofu_llama32_1b", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: Recipe tofu_llama32_1b (" in err and "needs a GPU (requires: gpu)" in err
    assert "Run `python -m unlearn reproduce tofu_llama32_1b` on a machine with a CUDA GPU" in err
    assert fake.commands == [] and not out.exists()

    # --collect runs nothing, so it checks runs finished elsewhere on any machine (none here: all missing, exit 3).
    out.mkdir()
    assert main(["reproduce", "tofu_llama32_1b", "--out", str(out), "--collect"]) == 3
    assert "| npo_rt_forget10 | forget quality | missing |" in capsys.readouterr().out

    # With a GPU the guard lets the runs start (fake fits here), the command line's overrides reaching every run.
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)
    # (The fake fits' numbers miss most bands: exit 3.)
    assert main(["reproduce", "tofu_llama32_1b", "--out", str(out), "data.idk_path=/data/idontknow.jsonl"]) == 3
    fits = [c for c in fake.commands if c[3] == "fit"]
    assert len(fits) == 18 and all("data.idk_path=/data/idontknow.jsonl" in c for c in fits)
    assert f"run.cache_dir={out / 'cache'}" in fits[0]


@pytest.mark.parametrize("name", ["tofu_paper_grid", "tofu_llama2_7b", "tofu_llama32_1b"])
def test_a_gpu_sweep_is_refused_on_a_cpu_but_its_dry_run_and_collect_are_not(tmp_path, monkeypatch, capsys, name):
    fake = FakeFit()
    monkeypatch.setattr("unlearn.experiments.runner.launch_logged", fake)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    out = tmp_path / "out"
    assert main(["sweep", name, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"Sweep {name} (" in err and "needs a GPU (requires: gpu)" in err and "CUDA GPU" in err
    assert fake.commands == [] and not out.exists()
    assert main(["sweep", name, "--out", str(out), "--dry-run"]) == 0
    assert fake.commands == []
