"""The sweep runner on tiny configs, ``fit`` replaced by a fake that writes a summary: expansion, seeds,
skipping finished runs, resuming interrupted ones, ``--collect`` and the collected mean ± sd."""

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY_CONFIG
from unlearn.cli import main
from unlearn.errors import ConfigError, RunFolderError
from unlearn.experiments.collect import collect
from unlearn.experiments.runner import fit_command, load_run_config, retain_warning, run_dir, run_sweep
from unlearn.experiments.sweep_file import SweepFileError, parse_sweep, select
from unlearn.names import FORGET_QUALITY, MODEL_UTILITY, SUMMARY_KEYS


def sweep_of(tmp_path, **data):
    data.setdefault("base", {"configs": [TINY_CONFIG], "overrides": ["trainer.accelerator=cpu"]})
    return parse_sweep(data, tmp_path / "s.yaml")


def test_axes_are_a_cartesian_product_first_axis_outermost(tmp_path):
    runs = sweep_of(tmp_path, axes={"data.forget_split": ["forget05", "forget10"], "loss.name": ["ga", "npo"],
                                    "optim.lr": [1.0e-4]}).runs()
    assert [r.name for r in runs] == ["forget05_ga_lr0.0001", "forget05_npo_lr0.0001", "forget10_ga_lr0.0001",
                                      "forget10_npo_lr0.0001"]
    assert runs[1].overrides == ["data.forget_split=forget05", "loss.name=npo", "optim.lr=0.0001"]
    assert {r.group for r in runs} == {"runs"} and runs[0].seed is None


def test_a_case_sweeps_a_methods_own_coefficient_for_that_method_only(tmp_path):
    runs = sweep_of(tmp_path, set={"trainer.max_epochs": 2}, axes={"loss.name": ["ga", "npo_rt"]},
                    cases=[{"when": {"loss.name": "npo_rt"}, "set": {"loss.beta": 0.1},
                            "axes": {"loss.c_rt": [1.0, 5.0]}},
                           {"when": {"loss.name": ["ga", "npo"]}, "set": {"trainer.max_epochs": 3}}]).runs()
    assert [r.name for r in runs] == ["ga", "npo_rt_c_rt1.0", "npo_rt_c_rt5.0"]
    assert runs[0].overrides == ["trainer.max_epochs=3", "loss.name=ga"]  # a case replaces the value in place
    assert runs[2].overrides == ["trainer.max_epochs=2", "loss.name=npo_rt", "loss.beta=0.1", "loss.c_rt=5.0"]


def test_zipped_values_groups_templates_and_lists(tmp_path):
    s = sweep_of(tmp_path, groups={
        "split": {"axes": {"bench": [{"data.forget_split": "forget10"},
                                     {"name": "large", "data.forget_split": "forget50",
                                      "data.builtin.forget_percents": [1, 5, 10, 50]}]}},
        "long": {"name": "long_{loss.name}", "set": {"eval.collapse_fraction": 0}, "axes": {"loss.name": ["ga"]}}})
    runs = s.runs()
    assert [(r.group, r.name) for r in runs] == [("split", "forget10"), ("split", "large"), ("long", "long_ga")]
    assert runs[1].overrides == ["data.forget_split=forget50", "data.builtin.forget_percents=[1,5,10,50]"]
    assert runs[2].value("eval.collapse_fraction") == "0" and runs[2].value("loss.beta") is None
    assert [r.name for r in select(runs, ["long"])] == ["long_ga"]
    assert [r.name for r in select(runs, ["*50*", "large"])] == ["large"]


def test_seeds_set_run_and_data_seed_and_name_the_runs(tmp_path):
    runs = sweep_of(tmp_path, seeds=[1, 2], axes={"loss.name": ["ga"]}).runs()
    assert [(r.name, r.point, r.seed) for r in runs] == [("ga_seed1", "ga", 1), ("ga_seed2", "ga", 2)]
    assert runs[1].overrides == ["loss.name=ga", "run.seed=2", "data.seed=2"]
    only_data = sweep_of(tmp_path, seeds=[7], seed_keys=["data.seed"]).runs()
    assert [(r.name, r.overrides) for r in only_data] == [("default_seed7", ["data.seed=7"])]
    assert [r.seed for r in parse_sweep({"seeds": [1]}, tmp_path / "s.yaml", seeds=[3, 4]).runs()] == [3, 4]


@pytest.mark.parametrize("data, message", [
    ({"axis": {}}, "unknown key"),
    ({"axes": {"loss.name": "npo"}}, "non-empty list"),
    ({"seeds": [1, 1]}, "repeat"),
    ({"seeds": ["a"]}, "list of integers"),
    ({"groups": {"a": {"axes": {"loss.name": ["ga"]}}, "b": {"axes": {"loss.name": ["ga"]}}}}, "two runs are named ga"),
    ({"groups": {"a": {"name": "{loss.beta}", "axes": {"loss.name": ["ga"]}}}}, "does not set"),
    ({"axes": {"loss.name": ["ga"]}, "groups": {"a": {}}}, "not both"),
    ({"cases": [{"if": {}}]}, "unknown key"),
])
def test_sweep_file_mistakes_are_config_errors(tmp_path, data, message):
    with pytest.raises(SweepFileError, match=message) as err:
        parse_sweep(data, tmp_path / "s.yaml").runs()
    assert isinstance(err.value, ConfigError) and err.value.exit_code == 2


def fake_summary(fq, mu, selected=1, stopped=None):
    record = lambda epoch, q, u: {"epoch": epoch, "step": 5 * epoch, **{k: 0.5 for k in SUMMARY_KEYS},
                                  FORGET_QUALITY: q, MODEL_UTILITY: u}
    history = [record(0, 0.01, 0.8), record(1, fq, mu)]
    return {"loss": "npo", "forget_split": "forget10", "steps": 5,
            "evaluation": {"target": history[0], "retain": {FORGET_QUALITY: 1.0, MODEL_UTILITY: 0.7},
                           "unlearned": history[selected], "selected_epoch": selected, "stopped_epoch": stopped,
                           "history": history}}


class FakeFit:
    """Stands in for the fit/finetune subprocesses: records each command, writes a summary per its seed."""

    def __init__(self, values=None, fail=()):
        self.commands, self.values, self.fail = [], values or {}, fail

    def __call__(self, command, log_path, env):
        self.commands.append(command)
        args = dict(a.split("=", 1) for a in command if "=" in a and not a.startswith("-"))
        if command[3] != "fit":
            return 0
        folder = run_dir_of(args)
        if args["run.name"] in self.fail:
            folder.mkdir(parents=True, exist_ok=True)
            return 1
        folder.mkdir(parents=True, exist_ok=True)
        fq, mu = self.values.get(args["run.name"], (0.5, 0.8))
        (folder / "summary.json").write_text(json.dumps(fake_summary(fq, mu)))
        return 0


def run_dir_of(args):
    return Path(args["run.output_dir"]) / args["run.name"]


def test_runs_skip_finished_ones_and_collect(tmp_path):
    s = sweep_of(tmp_path, seeds=[1, 2, 3], axes={"loss.name": ["ga", "npo"]})
    fake = FakeFit({"npo_seed1": (0.1, 0.7), "npo_seed2": (0.2, 0.8), "npo_seed3": (0.6, 0.9)}, fail=("ga_seed3",))
    out = tmp_path / "out"
    statuses = run_sweep(s, s.runs(), out, ["eval.max_rows=4"], jobs=2, launch=fake)
    assert statuses == {"ga_seed1": 0, "ga_seed2": 0, "ga_seed3": 1, "npo_seed1": 0, "npo_seed2": 0, "npo_seed3": 0}
    fits = [c for c in fake.commands if c[3] == "fit"]
    assert fits[0][:5] == [sys.executable, "-m", "unlearn", "fit", "--config"] and "eval.max_rows=4" in fits[0]
    assert f"run.output_dir={out / 'runs'}" in fits[0] and "trainer.enable_progress_bar=false" in fits[0]
    # The built-in models are prepared before any run, once per model set: run.seed keys (and initialises) the
    # built-in target and retain models, so each of the three seeds has its own.
    assert [c[3] for c in fake.commands][:3] == ["finetune"] * 3 and [c[3] for c in fake.commands].count("finetune") == 3
    assert (out / "commands.txt").read_text().count(" fit ") == 6

    results = collect(s, s.runs(), out, compare_groups=False)
    npo = next(p for p in results["points"] if p["point"] == "npo")
    fq = npo["metrics"]["forget quality"]
    # Hand-worked: mean 0.3, sd sqrt(((0.2)^2 + 0.1^2 + 0.3^2) / 2) = sqrt(0.07); with three seeds each extreme
    # is drawn three times with probability 1/27 > 2.5%, so the 95% bootstrap interval is [min, max].
    assert fq["mean"] == pytest.approx(0.3) and fq["sd"] == pytest.approx(0.07 ** 0.5) and fq["n"] == 3
    assert fq["ci"] == pytest.approx([0.1, 0.6])
    assert npo["metrics"]["model utility × start"]["mean"] == pytest.approx(1.0)  # 0.8 / 0.8 on average
    assert npo["settings"] == {"loss.name": "npo"} and npo["n"] == 3
    ga = next(p for p in results["points"] if p["point"] == "ga")
    assert ga["n"] == 2 and [r["status"] for r in ga["runs"]] == ["done", "done", "unfinished"]
    md = (out / "results.md").read_text()
    assert "| npo | 3/3 | 0.3 ± 0.265 | 0.800 ± 0.100 | [0.1, 0.6] | [0.700, 0.900] |" in md
    assert "| ga | 2/3 | 0.5 ± 0 | 0.800 ± 0.000 | [0.5, 0.5] | [0.800, 0.800] |" in md
    assert json.loads((out / "results.json").read_text())["points"][1]["metrics"]["forget quality"]["n"] == 3

    # Again: the finished runs are skipped; the failed one (a folder without summary) needs --resume.
    with pytest.raises(RunFolderError, match="--resume"):
        run_sweep(s, s.runs(), out, launch=FakeFit())
    again = FakeFit()
    assert run_sweep(s, s.runs(), out, resume=True, launch=again) == {"ga_seed3": 0}
    (fit,) = [c for c in again.commands if c[3] == "fit"]
    assert fit[-1] == "run.overwrite=true"  # no checkpoint: starts again in its folder
    assert run_sweep(s, s.runs(), out, launch=FakeFit()) == {}


def test_an_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    s = sweep_of(tmp_path, axes={"loss.name": ["ga"]})
    (run,) = s.runs()
    checkpoint = run_dir(tmp_path, run) / "checkpoints" / "last.ckpt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"state")
    with pytest.raises(RunFolderError, match="stopped before finishing"):
        run_sweep(s, [run], tmp_path, launch=FakeFit())
    fake = FakeFit()
    assert run_sweep(s, [run], tmp_path, resume=True, launch=fake) == {"ga": 0}
    assert fake.commands[-1] == fit_command(s, run, tmp_path) + ["run.resume=true"]


def test_every_config_is_checked_before_anything_runs(tmp_path):
    s = sweep_of(tmp_path, axes={"loss.name": ["ga", "no_such_loss"]})
    fake = FakeFit()
    with pytest.raises(ConfigError, match="run no_such_loss of sweep"):
        run_sweep(s, s.runs(), tmp_path / "out", launch=fake)
    assert fake.commands == [] and not (tmp_path / "out").exists()


def test_collect_only_and_dry_run_through_the_cli(tmp_path, capsys):
    path = tmp_path / "mine.yaml"
    path.write_text(f"base: {{configs: [{TINY_CONFIG}]}}\nseeds: [1, 2]\naxes: {{loss.name: [ga]}}\n"
                    "overview: {rows: loss.name, columns: [data.forget_split]}\n")
    s = parse_sweep({"base": {"configs": [TINY_CONFIG]}, "seeds": [1, 2], "axes": {"loss.name": ["ga"]}}, path)
    out = tmp_path / "out"
    for run, fq in zip(s.runs(), (0.2, 0.4)):
        run_dir(out, run).mkdir(parents=True)
        (run_dir(out, run) / "summary.json").write_text(json.dumps(fake_summary(fq, 0.8)))
    assert main(["sweep", str(path), "--dry-run", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("[runs] -m unlearn fit --config") == 2 and "run.seed=2 data.seed=2" in printed
    assert main(["sweep", str(path), "--collect", "--out", str(out)]) == 0
    assert "| ga | 2/2 | 0.3 ± 0.141 |" in (out / "results.md").read_text()
    table = (out / "compare" / "runs" / "comparison.md").read_text()
    assert "| ga (n=2) | npo | forget10 | 0.3 ± 0.141 |" in table  # compare groups the seeds: one row
    assert not (out / "logs").exists()  # nothing ran
    # The overview asks for data.forget_split columns, which this sweep never sets: an empty table.
    assert (out / "overview.md").read_text().startswith("# mine: overview")
    assert main(["sweep", str(path), "--collect", "--out", str(tmp_path / "missing")]) == 2
    assert "nothing to collect" in capsys.readouterr().err


def test_ctrl_c_starts_no_further_run_and_says_how_to_continue(tmp_path):
    from unlearn.errors import RunStoppedByUser

    s = sweep_of(tmp_path, axes={"loss.name": ["ga", "npo", "npo_rt"]})
    fits = []

    def interrupted(command, log_path, env):  # fit saves its state on Ctrl-C and exits 130
        if command[3] == "fit":
            fits.append(command)
            return 130
        return 0

    with pytest.raises(RunStoppedByUser, match="same command and --resume") as err:
        run_sweep(s, s.runs(), tmp_path / "out", launch=interrupted)
    assert err.value.exit_code == 130 and len(fits) == 1

    def ctrl_c_here(command, log_path, env):  # a KeyboardInterrupt while the sweep waits for its runs
        if command[3] == "fit":
            raise KeyboardInterrupt
        return 0

    with pytest.raises(RunStoppedByUser):
        run_sweep(s, s.runs()[1:], tmp_path / "out2", launch=ctrl_c_here, resume=True)


def test_models_trained_from_scratch_are_prepared_once_per_seed_before_the_runs(tmp_path, tofu_dir):
    # Parallel runs of one seed would otherwise each train the same models into one cache folder at once.
    s = sweep_of(tmp_path, seeds=[1, 2], axes={"loss.name": ["ga", "npo"]},
                 base={"configs": ["experiment/tofu_scratch"],
                       "overrides": ["trainer.accelerator=cpu", f"data.path={tofu_dir}"]})
    fake = FakeFit()
    run_sweep(s, s.runs(), tmp_path / "out", jobs=2, launch=fake)
    kinds = [(c[3], dict(a.split("=", 1) for a in c if "=" in a and not a.startswith("-"))["run.seed"])
             for c in fake.commands]
    assert kinds[:2] == [("finetune", "1"), ("finetune", "2")]
    assert sorted(kinds[2:]) == [("fit", "1"), ("fit", "1"), ("fit", "2"), ("fit", "2")]


@pytest.mark.parametrize("data", ["muse_builtin", "hazard_builtin"])
def test_the_other_built_in_benchmarks_models_are_prepared_once_per_seed(tmp_path, data):
    s = sweep_of(tmp_path, seeds=[1, 2], axes={"loss.name": ["ga", "npo"]},
                 base={"configs": [], "overrides": ["trainer.accelerator=cpu", f"data={data}"]})
    fake = FakeFit()
    run_sweep(s, s.runs(), tmp_path / "out", jobs=2, launch=fake)
    assert [c[3] for c in fake.commands] == ["finetune", "finetune", "fit", "fit", "fit", "fit"]
    assert all(f"data={data}" in c for c in fake.commands[:2])


def test_runs_without_the_retain_model_their_number_needs_are_warned_about_before_they_start(tmp_path, capsys):
    s = sweep_of(tmp_path, axes={"data.forget_split": ["forget05", "forget10"]}, cases=[
        {"when": {"data.forget_split": "forget10"}, "set": {"model.retain_path": "org/retain90"}}])
    extra = ["data.source=tofu", "model.path=org/target"]
    configs = {r.name: load_run_config(s, r, extra) for r in s.runs()}
    assert retain_warning(configs).startswith("[sweep] warning: 1 of 2 runs have no retain model")
    assert "forget quality will be reported as unavailable (e.g. forget05)" in retain_warning(configs)
    assert retain_warning({"forget10": configs["forget10"]}) is None
    # The built-in benchmark trains its own retain model: nothing to warn about.
    assert retain_warning({r.name: load_run_config(s, r) for r in s.runs()}) is None
    # A TOFU log named for a retain model that is not there: the run would stop before training.
    log = tmp_path / "nowhere" / "eval_log_aggregated.json"
    logged = {"forget05": load_run_config(s, s.runs()[0], [*extra, f"model.retain_path={log}"])}
    assert f"TOFU evaluation logs {log} do not exist" in retain_warning(logged)
    log.parent.mkdir()
    log.write_text("{}")
    assert retain_warning(logged) is None
    path = tmp_path / "grid.yaml"
    path.write_text(f"base: {{configs: [{TINY_CONFIG}]}}\naxes: {{data.forget_split: [forget05]}}\n")
    assert main(["sweep", str(path), "--dry-run", *extra]) == 0
    assert "1 of 1 runs have no retain model" in capsys.readouterr().out
