"""The shipped sweep files and recipes: the paper's TOFU grid and the built-in findings, run by run, and the
overview of the findings."""

import json

import pytest

from tests.test_compare import record, write_run
from unlearn.config.loading import configs_dir, load_config, read_config_file
from unlearn.experiments.collect import collect
from unlearn.experiments.overview import overview_markdown
from unlearn.experiments.collect import collect_points
from unlearn.experiments.reproduce import load_recipe, recipe_sweep
from unlearn.experiments.runner import load_run_config, run_dir
from unlearn.experiments.sweep_file import load_sweep, select
from unlearn.losses import LOSSES
from unlearn.names import BETA_LOSSES, LOSS_NAMES

PAPER_SPLITS = ("forget01", "forget05", "forget10")
LARGE = "data.builtin.forget_percents=[1,5,10,50]"


def paper_loss_file(loss, split):
    """The loss group holding a strategy's paper settings on a split (per split where its authors tuned per split)."""
    per_split = f"loss/{loss}_{split}"
    return per_split if (configs_dir() / f"{per_split}.yaml").is_file() else f"loss/{loss}"


def test_paper_grid_is_every_strategy_on_three_splits_at_its_paper_settings():
    grid = load_sweep("tofu_paper_grid")
    runs = grid.runs()
    assert [r.name for r in runs] == [f"{loss}_{split}" for loss in LOSS_NAMES for split in PAPER_SPLITS]
    for run in runs:
        loss, split = run.point.rsplit("_", 1)
        cfg = load_run_config(grid, run)
        settings = read_config_file(paper_loss_file(loss, split))["loss"]
        assert {k: getattr(cfg.loss, k) for k in settings} == settings, run.name
        assert (cfg.loss.name, cfg.data.forget_split, cfg.optim.lr) == (loss, split, 1e-5)
        assert cfg.data.batch_size * cfg.optim.accumulate_grad_batches == 32
        assert (cfg.model.path, cfg.data.source, cfg.data.max_length) == ("locuslab/tofu_ft_llama2-7b", "tofu", 500)
    # SimNPO's per-split settings (docs/definitions.md, "Paper settings"); the other files hold one setting.
    simnpo = {r.value("data.forget_split"): r.value("loss") for r in runs if r.point.startswith("simnpo")}
    assert simnpo == {"forget01": "simnpo_forget01", "forget05": "simnpo_forget05", "forget10": "simnpo"}
    assert sorted(p.stem for p in (configs_dir() / "loss").glob("*_forget*.yaml")) == ["simnpo_forget01",
                                                                                     "simnpo_forget05"]


def test_one_grid_run_by_hand_equals_the_sweeps():
    grid = load_sweep("tofu_paper_grid")
    (run,) = select(grid.runs(), ["npo_forget05"])
    # The grid adds the NPO code's evaluation of forget quality: the first 300 questions, against its retain log.
    log = "negative-preference-optimization/TOFU/data/retain95_llama_wd0.01/eval_results/ds_size300/" \
          "eval_log_aggregated.json"
    by_hand = load_config(["experiment/tofu_llama2"], ["loss=npo", "data.forget_split=forget05", "eval.max_rows=300",
                                                        f"model.retain_path={log}"])
    assert load_run_config(grid, run) == by_hand


def test_non_simnpo_paper_settings_are_the_npo_papers():
    # beta 0.1 and every coefficient 1.0, for what each strategy takes (docs/definitions.md, "Paper settings"),
    # the NPO code's KL scale (B x max_length) and its one token mean over the IDK and retain batches.
    for loss in ("ga", "grad_diff", "kl", "idk", "dpo", "npo", "npo_rt", "npo_kl"):
        taken = LOSSES[loss].hparam_names()
        expected = {"name": loss, **{k: 0.1 for k in ("beta",) if k in taken},
                    **{k: 1.0 for k in ("c_forget", "c_npo", "c_rt", "c_kl") if k in taken},
                    **({"kl_mask": "padded"} if "kl_mask" in taken else {}),
                    **({"idk_mean": "joint"} if "idk_mean" in taken else {})}
        for split in PAPER_SPLITS:
            assert read_config_file(paper_loss_file(loss, split))["loss"] == expected, (loss, split)


def findings_by_hand() -> dict[str, set[str]]:
    """The runs of the built-in findings as the former `sweep` planned them: {name: overrides}."""
    runs = {}
    for split in ("forget01", "forget05", "forget10", "forget50"):
        extra = {LARGE} if split == "forget50" else set()
        # RMU steers layer 2 of the built-in model's 4 (its default, 7, is the middle of Llama's 32).
        runs.update({f"{split}_{loss}": {f"loss.name={loss}", f"data.forget_split={split}", *extra,
                                         *({"loss.layer=2"} if loss == "rmu" else ())}
                     for loss in LOSS_NAMES})
    runs.update({f"long_{loss}": {f"loss.name={loss}", "data.forget_split=forget10", "trainer.max_epochs=40",
                                  "eval.collapse_fraction=0", "eval.every_n_epochs=2"} for loss in ("ga", "npo")})
    paper_beta = read_config_file("loss/npo")["loss"]["beta"]
    for split in ("forget10", "forget50"):
        extra = {LARGE} if split == "forget50" else set()
        runs.update({f"{split}_{loss}_beta{paper_beta}": {f"loss.name={loss}", f"data.forget_split={split}",
                                                           f"loss.beta={paper_beta}", *extra} for loss in BETA_LOSSES})
    return runs


def test_builtin_findings_are_the_former_sweeps_runs():
    findings = load_sweep("builtin_findings")
    runs = findings.runs()
    assert {r.name: set(r.overrides) for r in runs} == findings_by_hand()
    assert list(dict.fromkeys(r.group for r in runs)) == ["forget01", "forget05", "forget10", "forget50", "long",
                                                          "beta"]
    assert findings.seeds is None and findings.configs == ()
    # Every strategy once, the large benchmark, the long runs and the β runs load and build their loss.
    from unlearn.losses import build_loss_from_config

    for run in select(runs, ["forget10", "forget50_npo", "long", "beta"]):
        build_loss_from_config(load_run_config(findings, run).loss)


def test_findings_overview_puts_each_setting_in_its_strategy_and_column_cell(tmp_path):
    findings = load_sweep("builtin_findings")
    runs = {r.name: r for r in findings.runs()}
    out = tmp_path / "sweep"

    def put(name, history, selected, stopped=None):
        folder = run_dir(out, runs[name])
        folder.parent.mkdir(parents=True, exist_ok=True)
        write_run(folder, runs[name].value("loss.name"), history, selected, stopped)

    put("forget10_ga", [record(0, 0.007, 0.75), record(1, 0.1, 0.6), record(2, 0.6, 0.1)], 1, stopped=2)
    put("forget10_npo", [record(0, 0.007, 0.75), record(1, 0.05, 0.74), record(2, 0.4, 0.73)], 2)
    put("forget10_npo_beta0.1", [record(0, 0.007, 0.75), record(1, 0.6, 0.70)], 1)
    put("long_ga", [record(0, 0.007, 0.75), record(1, 0.9, 0.75)], 1)
    text = overview_markdown(findings, collect_points(findings, findings.runs(), out))
    lines = text.splitlines()
    assert lines[4] == ("| loss.name | forget01 | forget05 | forget10 | forget50 | forget10 beta=0.1 | "
                        "forget50 beta=0.1 |")
    # GA kept 0.9x utility at no evaluated epoch; NPO's best such epoch has 0.4; the β run (0.93x) its own column.
    assert "| ga |  |  | none (n=1) |  |  |  |" in text
    assert "| npo |  |  | 0.4 (n=1) |  | 0.6 (n=1) |  |" in text
    assert "| ga |  |  | 0.1 @ 0.80× |  |  |  |" in text
    assert "| target (before unlearning) |  |  | 0.007 ± 0 |  | 0.007 |  |" in text
    assert "0.9 (n=1)" not in text  # the long runs are not in the overview
    results = collect(findings, findings.runs(), out)
    assert (out / "overview.md").read_text() == text
    assert (out / "compare" / "forget10" / "comparison.png").is_file() and not (out / "compare" / "forget01").exists()
    assert sum(p["n"] for p in results["points"]) == 4
    assert json.loads((out / "results.json").read_text())["sweep"] == "builtin_findings"


@pytest.mark.parametrize("name", ["builtin_default", "builtin_findings"])
def test_shipped_recipes_name_settings_their_sweeps_have(name):
    recipe, path = load_recipe(name)
    sweep = recipe_sweep(recipe, path)
    points = {r.point for r in sweep.runs()}
    assert set(recipe["bands"]) <= points
    assert sweep.env["ATEN_CPU_CAPABILITY"] == "default" and sweep.env["OMP_NUM_THREADS"] == "1"
    assert "trainer.accelerator=cpu" in recipe["overrides"]
