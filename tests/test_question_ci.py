"""Intervals over questions: one run's forget quality and model utility resampled by question, the selected
epoch's per-question values that ``fit`` writes for them, and the table the sweep collects."""

import json
from math import comb

import lightning as L
import numpy as np
import pytest
import torch
from scipy import stats
from torch.utils.data import DataLoader

from tests.test_sweep_runner import fake_summary, sweep_of
from unlearn.callbacks.evaluation import BenchmarkEvaluation
from unlearn.callbacks.selection import BestEpochSelection
from unlearn.evaluation import metrics
from unlearn.experiments.collect import collect
from unlearn.experiments.runner import run_dir
from unlearn.names import FORGET_QUALITY as FQ
from unlearn.names import MODEL_UTILITY as MU
from unlearn.reporting.question_ci import (SELECTED_EVAL, forget_quality_interval, model_utility_interval,
                                           question_intervals, read_selected_eval)


def split(probability, rouge_l, truth_ratio):
    return {"probability": list(probability), "rouge_l": list(rouge_l), "truth_ratio": list(truth_ratio)}


def payload(forget_ratios, retain_ratios, epoch=1, fq=0.5, mu=0.6):
    utility = {name: split([0.5, 0.7, 0.9], [0.4, 0.6, 0.8], [2.0, 3.0, 4.0])
               for name in ("retain", "real_authors", "world_facts")}
    result = {"benchmark": "tofu", "summary": {FQ: fq, MU: mu},
              "per_question": {"forget": split([0.1] * len(forget_ratios), [0.2] * len(forget_ratios),
                                               forget_ratios), **utility}}
    retain = {"benchmark": "tofu", "per_question": {"forget": split([], [], retain_ratios)}}
    return {"epoch": epoch, "result": result, "retain": retain}


def test_paired_resampling_of_identical_answers_never_moves_forget_quality():
    # The model answers exactly as the retain model on every question: any draw of questions, taken for both
    # together, gives two equal samples and p = 1. Drawing the two samples apart would not.
    ratios = np.linspace(0.1, 2.0, 20)
    assert forget_quality_interval(ratios, ratios) == (1.0, 1.0)


def test_separated_truth_ratios_give_the_exact_ks_step_on_every_draw():
    # Every model ratio below every retain ratio: each paired draw keeps D = 1, whose exact two-sided p-value
    # for n = m = 4 is 2 / C(8, 4) = 2/70, the 0.0286 step of 4-question forget quality.
    low, high = forget_quality_interval([0.1, 0.2, 0.3, 0.4], [1.1, 1.2, 1.3, 1.4])
    assert low == pytest.approx(2 / comb(8, 4)) and high == pytest.approx(2 / comb(8, 4))
    assert low == pytest.approx(stats.ks_2samp([0.1, 0.2, 0.3, 0.4], [1.1, 1.2, 1.3, 1.4]).pvalue)


def test_forget_quality_interval_holds_the_runs_value_and_is_fixed():
    rng = np.random.default_rng(3)
    for n in (40, 400):
        model, retain = rng.lognormal(0.0, 1.0, n), rng.lognormal(0.4, 1.0, n)
        point = metrics.forget_quality(model, retain)[0]
        low, high = forget_quality_interval(np.log(model), np.log(retain))  # monotone: the same KS statistic
        assert low <= point <= high and low < high
    assert forget_quality_interval(model, retain) == forget_quality_interval(model, retain)  # fixed seed
    with pytest.raises(ValueError, match="equal-length"):
        forget_quality_interval([1.0, 2.0], [1.0])


def test_model_utility_interval_resamples_each_split_and_holds_the_run():
    constant = {name: split([0.5] * 5, [0.4] * 5, [2.0] * 5) for name in ("retain", "real_authors", "world_facts")}
    expected = metrics.model_utility([0.5, 0.4, 0.5] * 3)  # truth ratio: max(0, 1 - 1/2) = 0.5
    assert model_utility_interval(constant) == pytest.approx((expected, expected))
    varied = payload([1.0], [1.0])["result"]["per_question"]
    nine = [x for name in ("retain", "real_authors", "world_facts")
            for x in (np.mean(varied[name]["probability"]), np.mean(varied[name]["rouge_l"]),
                      metrics.utility_truth_ratio(varied[name]["truth_ratio"]))]
    low, high = model_utility_interval(varied)
    assert low < metrics.model_utility(nine) < high
    with pytest.raises(ValueError, match="world_facts"):
        model_utility_interval({k: v for k, v in constant.items() if k != "world_facts"})


def test_question_intervals_read_the_selected_epochs_file(tmp_path):
    intervals = question_intervals(payload([0.1, 0.2, 0.3, 0.4], [1.1, 1.2, 1.3, 1.4], fq=0.0286, mu=0.6))
    assert intervals["forget quality"]["value"] == 0.0286
    assert intervals["forget quality"]["ci"] == pytest.approx([2 / 70, 2 / 70])
    assert intervals["model utility"]["value"] == 0.6
    without_retain = question_intervals({**payload([0.5], [0.5]), "retain": None})
    assert set(without_retain) == {"model utility"}
    assert question_intervals({"epoch": 1, "result": {"benchmark": "muse"}}) == {}
    (tmp_path / SELECTED_EVAL).write_text(json.dumps(payload([0.5], [0.5], epoch=3)))
    assert read_selected_eval(tmp_path, 3)["epoch"] == 3
    assert read_selected_eval(tmp_path, 2) is None  # written for an epoch the run did not keep
    assert read_selected_eval(tmp_path / "absent", 3) is None


class TaggedResult:
    def __init__(self, tag):
        self.tag = tag

    def to_dict(self):
        return {"tag": self.tag}


class ScriptedEvaluation(BenchmarkEvaluation):
    """Scripted numbers, and a result per evaluation that says which epoch made it."""

    def __init__(self, utility, quality):
        super().__init__(evaluator=None, retain=TaggedResult("retain"), num_logged_samples=0)
        self.utility, self.quality = utility, quality

    def evaluate(self, trainer, pl_module, epoch):
        record = {"epoch": epoch, "step": trainer.global_step, MU: self.utility[epoch], FQ: self.quality.get(epoch)}
        self.records.append(record)
        self.latest = TaggedResult(epoch)
        return record


class LinearModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.policy = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.policy(batch).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(torch.randn(4, 2), batch_size=2)


@pytest.mark.parametrize("rule, expected", [("forget_quality", 2), ("last", 3)])
def test_selection_writes_the_selected_epochs_results_and_the_retain_models(tmp_path, rule, expected):
    evaluation = ScriptedEvaluation({0: 0.8, 1: 0.8, 2: 0.7, 3: 0.2}, {1: 0.1, 2: 0.9, 3: 0.95})
    selection = BestEpochSelection(evaluation, rule, 0.5, result_path=tmp_path / SELECTED_EVAL)
    L.Trainer(max_epochs=3, callbacks=[evaluation, selection], accelerator="cpu", devices=1, logger=False,
              enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False).fit(LinearModule())
    written = json.loads((tmp_path / SELECTED_EVAL).read_text())
    assert written == {"epoch": expected, "result": {"tag": expected}, "retain": {"tag": "retain"}}
    assert selection.selected["epoch"] == expected


def test_the_sweep_collects_each_runs_intervals_over_questions(tmp_path):
    s = sweep_of(tmp_path, axes={"loss.name": ["ga", "npo"]})
    out = tmp_path / "out"
    for run in s.runs():
        folder = run_dir(out, run)
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps(fake_summary(0.0286, 0.6)))
        if run.name == "npo":  # only npo's folder has the selected epoch's per-question values
            (folder / SELECTED_EVAL).write_text(json.dumps(payload([0.1, 0.2, 0.3, 0.4], [1.1, 1.2, 1.3, 1.4],
                                                                   fq=0.0286)))
    results = collect(s, s.runs(), out, compare_groups=False)
    ga, npo = (p["runs"][0] for p in results["points"])
    assert "question_ci" not in ga
    assert npo["question_ci"]["forget quality"]["ci"] == pytest.approx([2 / 70, 2 / 70])
    md = (out / "results.md").read_text()
    assert "## Intervals over questions" in md and "| npo | 0.0286 | [0.0286, 0.0286] | 0.600 |" in md
