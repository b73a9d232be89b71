"""``fit``'s evaluation summary and ``python -m unlearn eval`` end to end on the tiny built-in config."""

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import unlearn.evaluation.job
from tests.helpers import TINY_CONFIG
from unlearn.cli import main
from unlearn.config.loading import load_config
from unlearn.training.assets import Assets, resolve_assets
from unlearn.names import FORGET_QUALITY, MIA_ATTACKS, MODEL_UTILITY, PRIVACY_KEYS, SUMMARY_KEYS, mia_key

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
# eval.mia_attacks by default: every attack but gradnorm (a backward pass per text), then memorisation.
DEFAULT_ATTACKS = [a for a in MIA_ATTACKS if a != "gradnorm"]
DEFAULT_PRIVACY_KEYS = [*(mia_key(a) for a in DEFAULT_ATTACKS), *PRIVACY_KEYS[len(MIA_ATTACKS):]]


def _args(work, *extra):
    return ["--config", TINY_CONFIG, f"run.cache_dir={work.cache}", f"run.output_dir={work.runs}", *extra]


@dataclass
class Work:
    cache: Path
    runs: Path
    assets: Assets


@pytest.fixture(scope="module")
def work(tiny_cache, tmp_path_factory):
    """A 2-epoch fit on the session's tiny built-in models."""
    work = Work(tiny_cache, tmp_path_factory.mktemp("evaluation_runs"),
                resolve_assets(load_config([TINY_CONFIG], [f"run.cache_dir={tiny_cache}"])))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the one_thread fixture, for the whole module
    try:
        assert main(["fit", *_args(work, "run.name=fit", "trainer.max_epochs=2")]) == 0
        yield work
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def evaluated(monkeypatch):
    """The model paths ``eval`` actually runs (stored results are not run again)."""
    paths = []
    real = unlearn.evaluation.job.evaluate_model

    def counting(load_model, model_path, evaluator, device):
        paths.append(model_path)
        return real(load_model, model_path, evaluator, device)

    monkeypatch.setattr(unlearn.evaluation.job, "evaluate_model", counting)
    return paths


def _models(work):
    return work.assets.target, work.assets.retain


def test_fit_summary_compares_target_retain_and_unlearned(work):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = work.runs / "fit"
    evaluation = json.loads((run / "summary.json").read_text())["evaluation"]
    for column in ("target", "retain", "unlearned"):
        # TOFU's 14 numbers, then membership inference against the built-in holdout authors and memorisation.
        assert list(evaluation[column]) == [*SUMMARY_KEYS, *DEFAULT_PRIVACY_KEYS]
    assert evaluation["retain"][FORGET_QUALITY] == 1.0
    assert evaluation["retain"][mia_key("reference")] == 0.5  # against itself: every score ties
    assert all(0 <= evaluation["target"][mia_key(a)] <= 1 for a in DEFAULT_ATTACKS)
    assert evaluation["benchmark"] == "tofu" and evaluation["unavailable"] == []
    assert [r["epoch"] for r in evaluation["history"]] == [0, 1, 2]
    assert evaluation["target"] == {k: evaluation["history"][0][k] for k in (*SUMMARY_KEYS, *DEFAULT_PRIVACY_KEYS)}
    assert evaluation["selected_epoch"] in (1, 2) and f"epoch {evaluation['selected_epoch']}" in \
        evaluation["selection_reason"]
    assert "| metric | target | retain | unlearned |" in (text := (run / "summary.md").read_text())
    assert "| MIA AUC Min-K% |" in text and "| extraction strength |" in text
    assert (run / "model" / "model.safetensors").is_file() and not (run / "selected").exists()

    events = EventAccumulator(str(run / "tensorboard")).Reload()
    assert {"forget/probability", FORGET_QUALITY, MODEL_UTILITY, "utility/world_facts_truth_ratio",
            mia_key("min_k"), "forget/extraction_strength"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars(MODEL_UTILITY)) == 3
    assert any("samples/forget" in tag for tag in events.Tags()["tensors"])
    # The trajectory figure is redrawn at every evaluation; fluency is logged beside the summary numbers.
    assert len(events.Images("figures/trajectory")) == 3
    assert {"forget/distinct_2", "forget/repetition", "utility/retain_distinct_2"} <= set(events.Tags()["scalars"])
    assert {"forget/distinct_2", "utility/retain_repetition"} <= set(evaluation["history"][-1])
    assert {"forget/distinct_2", "utility/retain_repetition"} <= set(evaluation["retain_fluency"])


def test_eval_writes_per_question_values_and_reuses_retain_results(work, evaluated):
    for stored in (work.cache / "eval").glob("*.json"):
        stored.unlink()  # start without the retain results fit stored
    target, retain = _models(work)
    assert main(["eval", *_args(work, "run.name=first")]) == 0
    assert evaluated == [retain, target]

    report = json.loads((work.runs / "eval_first" / "eval.json").read_text())
    assert list(report["summary"]) == [*SUMMARY_KEYS, *DEFAULT_PRIVACY_KEYS]
    assert 0 <= report["summary"][FORGET_QUALITY] <= 1
    assert report["info"]["model"] == str(target) and report["info"]["retain_model"] == str(retain)
    sizes = {"forget": 5, "retain": 5, "real_authors": 10, "world_facts": 10}
    for split, rows in report["per_question"].items():
        assert rows["index"] == list(range(sizes[split]))
        assert {len(rows[k]) for k in ("probability", "rouge_l", "truth_ratio", "generation")} == {sizes[split]}
    assert "| metric | model | retain model |" in (work.runs / "eval_first" / "eval.md").read_text()

    evaluated.clear()
    assert main(["eval", *_args(work, "run.name=second")]) == 0
    assert evaluated == [target]  # the retain model's results came from the store
    again = json.loads((work.runs / "eval_second" / "eval.json").read_text())
    assert again["summary"] == report["summary"]


def test_retain_model_scores_one_against_itself(work, evaluated):
    _, retain = _models(work)
    assert main(["eval", *_args(work, f"model.path={retain}", "run.name=retain")]) == 0
    report = json.loads((work.runs / "eval_retain" / "eval.json").read_text())
    assert report["summary"][FORGET_QUALITY] == 1.0
    assert len(evaluated) <= 1  # evaluated once at most (stored by an earlier test otherwise)


def test_forget_quality_is_unavailable_without_a_retain_model(work, capsys):
    target, _ = _models(work)
    assert main(["eval", *_args(work, "data.source=tofu", f"data.path={work.assets.source}", f"model.path={target}",
                                "run.name=no_retain")]) == 0
    report = json.loads((work.runs / "eval_no_retain" / "eval.json").read_text())
    assert report["summary"][FORGET_QUALITY] is None and report["retain_summary"] is None
    assert "model.retain_path" in report["forget_quality_reason"]
    assert "Forget quality is unavailable" in (work.runs / "eval_no_retain" / "eval.md").read_text()
    assert "| forget quality | n/a |" in capsys.readouterr().out


def test_eval_never_overwrites_an_existing_folder(work, capsys):
    out = work.runs / "eval_first"
    before = (out / "eval.json").stat().st_mtime_ns
    assert main(["eval", *_args(work, "run.name=first")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "eval.json").stat().st_mtime_ns == before


@pytest.mark.parametrize("override, message", [("eval.selection=best", "eval.selection must be one of"),
                                               ("eval.every_n_epochs=0", "eval.every_n_epochs must be >= 1"),
                                               ("eval.collapse_fraction=2", "between 0 and 1")])
def test_bad_eval_settings_are_config_errors(work, capsys, override, message):
    assert main(["eval", *_args(work, override)]) == 2
    assert message in capsys.readouterr().err


def test_eval_of_own_files_says_tofu_metrics_need_a_tofu_benchmark(work, tmp_path, capsys):
    forget = tmp_path / "forget.jsonl"
    forget.write_text(json.dumps({"question": "Who?", "answer": "Nobody."}) + "\n")
    out = tmp_path / "out"
    assert main(["eval", *_args(work, "data.source=files", f"data.forget_path={forget}"), "--out", str(out)]) == 2
    assert "perturbed answers" in (err := capsys.readouterr().err) and "data.source=tofu" in err
    assert not out.exists()


def test_fit_without_evaluation_keeps_the_final_weights(work):
    assert main(["fit", *_args(work, "run.name=no_eval", "eval.enabled=false")]) == 0
    run = work.runs / "no_eval"
    assert json.loads((run / "summary.json").read_text())["evaluation"] is None
    assert (run / "model" / "model.safetensors").is_file() and not (run / "summary.md").exists()


def test_compare_reads_real_fit_runs(work, capsys):
    # The compare tests build run folders by hand; this one reads what fit actually writes.
    from matplotlib.image import imread

    assert main(["fit", *_args(work, "run.name=ga_run", "loss.name=ga", "trainer.max_epochs=1")]) == 0
    out = work.runs / "comparison"
    assert main(["compare", str(work.runs / "fit"), str(work.runs / "ga_run"), "--out", str(out)]) == 0
    table = (out / "comparison.md").read_text()
    for run, loss in (("fit", "npo_rt"), ("ga_run", "ga")):
        summary = json.loads((work.runs / run / "summary.json").read_text())
        selected = summary["evaluation"]["selected_epoch"]
        quality = summary["evaluation"]["unlearned"][FORGET_QUALITY]
        assert f"| {run} | {loss} | {summary['forget_split']} | {quality:.3g} |" in table
        assert f"| {selected} | {len(summary['evaluation']['history']) - 1}: " in table
    assert "| target (before unlearning) |" in table and "| retain model |" in table
    image = imread(out / "comparison.png")
    assert image.ndim == 3 and image.shape[0] > 200
    assert "Wrote" in capsys.readouterr().out
