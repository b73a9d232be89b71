"""``python -m unlearn compare``, its figures, and the sweep's plan, on synthetic run folders."""

import json

import numpy as np
import pytest

from unlearn.cli import main
from unlearn.reporting.compare import NotARunError, compare, comparison_table
from unlearn.names import FLUENCY_KEYS, FORGET_QUALITY, MODEL_UTILITY, SUMMARY_KEYS
from unlearn.reporting.plots import figure_to_rgb, trajectory_figure

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def record(epoch, quality, utility, steps_per_epoch=5):
    """An evaluation record as ``fit`` keeps it: epoch, step, the 14 summary numbers, the fluency numbers."""
    values = {key: 0.5 for key in (*SUMMARY_KEYS, *FLUENCY_KEYS)}
    return {"epoch": epoch, "step": epoch * steps_per_epoch, **values,
            FORGET_QUALITY: quality, MODEL_UTILITY: utility}


def write_run(folder, loss, history, selected, stopped=None):
    """A run folder shaped like ``fit``'s (only what ``compare`` reads besides a model folder)."""
    chosen = next(r for r in history if r["epoch"] == selected)
    summary = {"loss": loss, "forget_split": "forget10", "steps": history[-1]["step"],
               "evaluation": {"target": {k: history[0][k] for k in SUMMARY_KEYS},
                              "retain": {**{k: 0.4 for k in SUMMARY_KEYS}, FORGET_QUALITY: 1.0},
                              "retain_fluency": {k: 0.9 for k in FLUENCY_KEYS},
                              "unlearned": {k: chosen[k] for k in SUMMARY_KEYS}, "selected_epoch": selected,
                              "selection_rule": "forget_quality", "selection_reason": "...",
                              "stopped_epoch": stopped, "stop_reason": None if stopped is None else "collapse",
                              "forget_quality_reason": None, "history": history}}
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


@pytest.fixture
def runs(tmp_path):
    ga = write_run(tmp_path / "ga_run", "ga", [record(0, 0.007, 0.75), record(1, 0.1, 0.6), record(2, 0.6, 0.1)],
                   selected=1, stopped=2)
    npo = write_run(tmp_path / "npo_run", "npo", [record(0, 0.007, 0.75), record(1, 0.05, 0.74),
                                                  record(2, 0.4, 0.73)], selected=2)
    return [ga, npo]


def test_compare_writes_the_table_and_a_readable_png(runs, tmp_path):
    from matplotlib.image import imread

    paths = compare(runs, tmp_path / "out")
    table = paths["table"].read_text()
    assert "| ga_run | ga | forget10 | 0.1 | 0.600 (0.80×) | 0.500 | 0.500 | 0.50 | 1 | 2: 0.6 / 0.100 | " \
           "epoch 2 (collapse) |" in table
    assert "| npo_run | npo | forget10 | 0.4 | 0.730 (0.97×) |" in table
    # Best forget quality among epochs that kept 0.9x the starting utility: none for GA (0.80x, then 0.13x).
    assert "| best FQ at MU ≥ 0.9× (epoch) |" in table.splitlines()[2]
    assert table.count("epoch 2 (collapse) | none |") == 1 and "| no | 0.4 (2) |" in table
    assert "| target (before unlearning) | forget10 | 0.007 | 0.750 |" in table
    assert "| retain model | forget10 | 1 | 0.400 | 0.400 | 0.900 | 0.90 |" in table
    data = paths["figure"].read_bytes()
    assert data[:8] == PNG_SIGNATURE
    image = imread(paths["figure"])
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400


def test_compare_command_and_its_errors(runs, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["compare", *map(str, runs), "--out", str(out)]) == 0
    assert (out / "comparison.png").read_bytes()[:8] == PNG_SIGNATURE
    assert "| npo_run | npo |" in capsys.readouterr().out

    not_run = tmp_path / "not_a_run"
    not_run.mkdir()
    assert main(["compare", str(runs[0]), str(not_run), "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err
    assert "not_a_run is not a finished run: it has no summary.json" in err
    assert not (tmp_path / "bad").exists()  # nothing written when one folder is wrong
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_a_run_without_evaluation_is_refused(tmp_path):
    folder = tmp_path / "no_eval"
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps({"loss": "ga", "forget_split": "forget10", "evaluation": None}))
    with pytest.raises(NotARunError, match="eval.enabled=false"):
        compare([folder], tmp_path / "out")


def test_table_reads_runs_made_before_fluency_was_measured(tmp_path):
    history = [record(0, 0.007, 0.75), record(1, 0.2, 0.7)]
    for r in history:
        for key in FLUENCY_KEYS:
            del r[key]
    summary = json.loads((write_run(tmp_path / "old", "npo", history, 1) / "summary.json").read_text())
    row = "| old | npo | forget10 | 0.2 | 0.700 (0.93×) | 0.500 | n/a | n/a | 1 |"
    assert row in comparison_table({"old": summary})


def test_trajectory_figure_renders_runs_without_forget_quality():
    history = [{**record(0, None, 0.7)}, {**record(1, None, float("nan"))}, record(2, None, 0.6)]
    image = figure_to_rgb(trajectory_figure({"no retain": history}))
    assert image.dtype == np.uint8 and image.shape[2] == 3


def test_utility_floor_picks_the_best_forget_quality_that_kept_utility(runs, tmp_path):
    from unlearn.reporting.compare import best_within_utility

    history = [record(0, 0.01, 0.8), record(1, 0.5, 0.5), record(2, 0.2, 0.75), record(3, 0.2, 0.79)]
    assert best_within_utility(history, 0.9)["epoch"] == 2  # epoch 1 lost too much; ties go to the earliest
    assert best_within_utility(history, 0.5)["epoch"] == 1
    assert best_within_utility(history, 0.99) is None
    table = compare(runs, tmp_path / "floor", utility_floor=0.5)["table"].read_text()
    assert "best FQ at MU ≥ 0.5× (epoch)" in table and "(collapse) | 0.1 (1) |" in table
    with pytest.raises(ValueError, match="utility floor"):
        compare(runs, tmp_path / "bad", utility_floor=90)


def test_sweep_plan_covers_every_strategy_and_split():
    from unlearn.losses import LOSSES
    from unlearn.experiments.sweep import plan, select

    runs = plan()
    assert len(runs) == len(LOSSES) * 4 + 2 + 2 * 5
    assert {r.name for r in select(runs, ["forget10"])} == {f"forget10_{name}" for name in LOSSES}
    forget50 = select(runs, ["forget50_npo"])[0]
    assert "data.builtin.forget_percents=[1,5,10,50]" in forget50.overrides
    assert forget50.benchmark == ("data.forget_split=forget50", "data.builtin.forget_percents=[1,5,10,50]")
    assert [r.name for r in select(runs, ["long"])] == ["long_ga", "long_npo"]
    assert all("eval.collapse_fraction=0" in r.overrides for r in select(runs, ["long"]))
    beta = select(runs, ["beta"])
    assert {r.name for r in beta} >= {"forget10_npo_rt_beta0.1", "forget50_npo_rt_beta0.1"}
    assert all("loss.beta=0.1" in r.overrides for r in beta)
    # Only strategies that take a beta: the others would reject loss.beta.
    assert not {r.overrides[0] for r in beta} & {"loss.name=ga", "loss.name=grad_diff", "loss.name=kl", "loss.name=idk"}


def test_every_sweep_run_has_a_valid_config():
    from unlearn.config.loading import load_config
    from unlearn.losses import build_loss_from_config
    from unlearn.experiments.sweep import plan, select

    # Every strategy once, the large benchmark and the long runs (the other splits differ only in the split name).
    for run in select(plan(), ["forget10", "forget50_npo", "long", "beta"]):
        build_loss_from_config(load_config([], list(run.overrides)).loss)


def test_sweep_overview_puts_each_run_in_its_strategy_and_setting_cell(tmp_path):
    from unlearn.experiments.sweep import main as sweep_main
    from unlearn.experiments.sweep import overview, plan

    out = tmp_path / "sweep"
    write_run(out / "forget10_ga", "ga", [record(0, 0.007, 0.75), record(1, 0.1, 0.6), record(2, 0.6, 0.1)],
              selected=1, stopped=2)
    write_run(out / "forget10_npo", "npo", [record(0, 0.007, 0.75), record(1, 0.05, 0.74), record(2, 0.4, 0.73)],
              selected=2)
    write_run(out / "forget10_npo_beta0.1", "npo", [record(0, 0.007, 0.75), record(1, 0.6, 0.70)], selected=1)
    write_run(out / "long_ga", "ga", [record(0, 0.007, 0.75), record(1, 0.9, 0.75)], selected=1)
    text = overview(out, plan())
    header = text.splitlines()[4]
    assert header == "| strategy | forget01 | forget05 | forget10 | forget50 | forget10 β=0.1 | forget50 β=0.1 |"
    # GA kept 0.9x utility at no evaluated epoch; NPO's best such epoch is 2; the β run (0.93x) is its own column.
    assert "| ga |  |  | none |  | (no β) | (no β) |" in text
    assert "| npo |  |  | 0.4 (ep 2, rep 0.50) |  | 0.6 (ep 1, rep 0.50) |  |" in text
    assert "| ga |  |  | 0.1 @ 0.80× |  | (no β) | (no β) |" in text
    assert "| target (before unlearning) |  |  | 0.007 |  | 0.007 |  |" in text
    assert "0.9 (ep 1" not in text  # the long runs are not in the overview
    # --collect rewrites the comparisons and the overview without running anything.
    assert sweep_main(["--collect", "--out", str(out)]) == 0
    assert (out / "compare" / "overview.md").read_text() == text
    assert (out / "compare" / "forget10" / "comparison.png").is_file()
    assert not (out / "logs").exists()
    with pytest.raises(SystemExit, match="nothing to collect"):
        sweep_main(["--collect", "--out", str(tmp_path / "missing")])
