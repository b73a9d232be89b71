"""``python -m unlearn compare``, its figures and its rows over seeds (mean ± sd, error bars), on synthetic run folders."""

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
    assert "| ga_run | ga | forget10 | 0.1 | 0.600 (0.80×) | 0.500 | 0.500 | 0.50 | 0.50 | 1 | 2: 0.6 / 0.100 | " \
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
    row = "| old | npo | forget10 | 0.2 | 0.700 (0.93×) | 0.500 | n/a | n/a | n/a | 1 |"
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



def test_runs_of_one_setting_over_seeds_make_one_row_with_error_bars(runs, tmp_path):
    seeded = [write_run(tmp_path / f"npo_f10_seed{seed}", "npo", [record(0, 0.007, 0.75), record(1, fq, mu)], 1,
                        stopped=1 if seed == 2 else None)
              for seed, (fq, mu) in ((1, (0.1, 0.7)), (2, (0.4, 0.6)))]
    paths = compare([runs[0], *seeded], tmp_path / "seeds")
    table = paths["table"].read_text()
    # Hand-worked: forget quality 0.1 and 0.4: mean 0.25, sd sqrt(2 * 0.15^2) = 0.212; utility 0.65 ± 0.0707,
    # relative to epoch 0 (0.75): 0.867 ± 0.094.
    assert ("| npo_f10 (n=2) | npo | forget10 | 0.25 ± 0.212 | 0.650 ± 0.071 (0.87 ± 0.09×) | 0.500 ± 0.000 |"
            in table)
    assert "| 1.0 ± 0.0 | 1.0 ± 0.0: 0.25 ± 0.212 / 0.650 ± 0.071 | 1 of 2 (collapse) |" in table
    assert "| ga_run | ga | forget10 | 0.1 |" in table  # a run without seeds keeps its own row
    separate = compare([runs[0], *seeded], tmp_path / "apart", group_seeds=False)["table"].read_text()
    assert "| npo_f10_seed1 | npo |" in separate and "(n=2)" not in separate
    assert paths["figure"].read_bytes()[:8] == PNG_SIGNATURE


def test_the_figure_draws_error_bars_for_seeded_trajectories():
    from matplotlib.container import ErrorbarContainer

    from unlearn.reporting.stats import mean_history

    histories = [[record(0, 0.01, 0.8), record(1, 0.1, 0.7)], [record(0, 0.01, 0.8), record(1, 0.3, 0.6)]]
    mean, sd = mean_history(histories)
    assert mean[1][FORGET_QUALITY] == pytest.approx(0.2) and sd[1][MODEL_UTILITY] == pytest.approx(0.0707, abs=1e-4)
    fig = trajectory_figure({"npo": mean}, "t", references={"retain": (0.7, 1.0)}, spread={"npo": sd},
                            selected_points={"npo": ({MODEL_UTILITY: 0.65, FORGET_QUALITY: 0.2},
                                                     {MODEL_UTILITY: 0.07, FORGET_QUALITY: 0.14})})
    quality_ax, step_ax = fig.axes[:2]
    assert sum(isinstance(c, ErrorbarContainer) for c in quality_ax.containers) == 2  # trajectory and star
    assert any(isinstance(c, ErrorbarContainer) for c in step_ax.containers)
    assert "±1 sd" in fig._suptitle.get_text()
    plain = trajectory_figure({"npo": histories[0]})
    assert not plain.axes[0].containers
    assert figure_to_rgb(fig).shape[2] == 3


def test_seeds_that_trained_their_own_models_show_the_models_mean(tmp_path):
    folders = []
    for seed, (fq0, mu0, retain_mu) in ((1, (0.001, 0.7, 0.5)), (2, (0.003, 0.8, 0.6))):
        folder = write_run(tmp_path / f"npo_f10_seed{seed}", "npo", [record(0, fq0, mu0), record(1, 0.1, 0.6)], 1)
        summary = json.loads((folder / "summary.json").read_text())
        summary.update(target_model=f"/cache/seed{seed}/target", retain_model=f"/cache/seed{seed}/retain90")
        summary["evaluation"]["retain"][MODEL_UTILITY] = retain_mu
        (folder / "summary.json").write_text(json.dumps(summary))
        folders.append(folder)
    table = compare(folders, tmp_path / "out")["table"].read_text()
    # Targets 0.001 and 0.003 (mean 0.002, sd 0.00141), utility 0.75 ± 0.0707; retain models 0.55 ± 0.0707.
    assert "| (n=2 models) | target (before unlearning) | forget10 | 0.002 ± 0.00141 |" in table
    assert "| 0.750 ± 0.071 |" in table and "| (n=2 models) | retain model | forget10 | 1 ± 0 |" in table
    assert "| 0.550 ± 0.071 |" in table
    # Runs over seeds of one shared model pair keep the single pair's rows.
    shared = [write_run(tmp_path / f"kl_f10_seed{seed}", "kl", [record(0, 0.002, 0.75), record(1, 0.1, 0.6)], 1)
              for seed in (1, 2)]
    table = compare(shared, tmp_path / "shared")["table"].read_text()
    assert "|  | target (before unlearning) | forget10 | 0.002 |" in table and "| (n=2 models) |" not in table
    # One pair whose cache folder was renamed between the seeds' runs (same models, same numbers): still one pair.
    for seed, folder in enumerate(shared, 1):
        summary = json.loads((folder / "summary.json").read_text())
        summary.update(target_model=f"/cache/key{seed}/target", retain_model=f"/cache/key{seed}/retain90")
        (folder / "summary.json").write_text(json.dumps(summary))
    table = compare(shared, tmp_path / "renamed")["table"].read_text()
    assert "|  | target (before unlearning) | forget10 | 0.002 |" in table and "| (n=2 models) |" not in table
    # One pair at one path whose numbers differ in the last bits between runs (a GPU's nondeterministic kernels):
    # still one pair.
    for seed, folder in enumerate(shared, 1):
        summary = json.loads((folder / "summary.json").read_text())
        summary.update(target_model="/cache/models/target", retain_model="/cache/models/retain90")
        summary["evaluation"]["target"][MODEL_UTILITY] = 0.75 + seed * 1e-9
        (folder / "summary.json").write_text(json.dumps(summary))
    assert "| (n=2 models) |" not in compare(shared, tmp_path / "gpu")["table"].read_text()


def test_a_number_only_some_seeds_have_says_how_many(tmp_path):
    # Seed 1 predates the short-answer rate (a measure added later): its mean is seed 2's alone, and says so.
    folders = []
    for seed, short in ((1, None), (2, 0.25)):
        history = [record(0, 0.001 * seed, 0.75), record(1, 0.1, 0.6)]  # each seed its own target
        for r in history:
            r.pop("forget/short_answers") if short is None else r.update({"forget/short_answers": short})
        folder = write_run(tmp_path / f"npo_f10_seed{seed}", "npo", history, 1)
        summary = json.loads((folder / "summary.json").read_text())
        summary.update(target_model=f"/cache/seed{seed}/target", retain_model=f"/cache/seed{seed}/retain90")
        if short is None:
            del summary["evaluation"]["retain_fluency"]["forget/short_answers"]
        (folder / "summary.json").write_text(json.dumps(summary))
        folders.append(folder)
    table = compare(folders, tmp_path / "out")["table"].read_text()
    # ROUGE-L, distinct-2 and repetition (both seeds: no n), then short answers (seed 2's alone)
    assert "| 0.500 ± 0.000 | 0.500 ± 0.000 | 0.50 ± 0.00 | 0.25 (n=1) |" in table
    assert "| (n=2 models) | retain model | forget10 | 1 ± 0 | 0.400 ± 0.000 | 0.400 ± 0.000 | 0.900 ± 0.000 | " \
           "0.90 ± 0.00 | 0.90 (n=1) |" in table
