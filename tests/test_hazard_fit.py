"""A WMDP-style run as users start it (`fit data=hazard_builtin`, shrunk in size only): forget-domain and
general accuracy per epoch in every report, the selected epoch, then `eval` of its model and of WMDP's layout."""

import json
from pathlib import Path

import pytest
import torch

from unlearn.cli import main
from unlearn.config.loading import load_config
from unlearn.errors import ConfigError
from unlearn.names import FORGET_ACCURACY, GENERAL_ACCURACY
from unlearn.training.assets import hazard_model_dir

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
# The defaults of `data=hazard_builtin` (progress bar, evaluation every epoch, selection, collapse stop), smaller.
TINY = ["data=hazard_builtin", "model.builtin.vocab_size=512", "model.builtin.hidden_size=32",
        "model.builtin.num_hidden_layers=2", "model.builtin.num_attention_heads=2", "model.builtin.intermediate_size=64",
        "data.hazard_builtin.num_hazard_entities=4", "data.hazard_builtin.num_general_entities=4",
        "data.hazard_builtin.train_questions_per_fact=2", "data.hazard_builtin.documents_per_entity=1",
        "finetune.epochs=3", "trainer.max_epochs=2", "optim.warmup_epochs=0.5", "optim.lr=1e-2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("hazard")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = [*TINY, f"run.cache_dir={work / 'cache'}", f"run.output_dir={work / 'runs'}"]
        assert main(["fit", *args, "loss=ga", "run.name=ga"]) == 0
        yield work, args
    finally:
        torch.set_num_threads(threads)


def kept_utility(history: list[dict], fraction: float = 0.5) -> list[dict]:
    """The evaluated epochs whose general accuracy stayed >= fraction x its value before unlearning."""
    floor = fraction * history[0][GENERAL_ACCURACY]
    return [r for r in history if r[GENERAL_ACCURACY] >= floor]


def test_fit_reports_forget_and_general_accuracy_per_epoch(run):
    work, _ = run
    folder = work / "runs" / "ga"
    evaluation = json.loads((folder / "summary.json").read_text())["evaluation"]
    assert evaluation["benchmark"] == "multiple_choice"
    history = evaluation["history"]
    assert [r["epoch"] for r in history] == [0, 1, 2]
    for record in history:  # the cloze style (the built-in default) also reports acc_norm
        assert {FORGET_ACCURACY, GENERAL_ACCURACY, FORGET_ACCURACY + "_norm"} <= set(record)
        assert 0 <= record[FORGET_ACCURACY] <= 1 and 0 <= record[GENERAL_ACCURACY] <= 1
        assert record[FORGET_ACCURACY] * 20 == pytest.approx(round(record[FORGET_ACCURACY] * 20))  # 20 questions
    assert evaluation["target"][FORGET_ACCURACY] == history[0][FORGET_ACCURACY]
    assert evaluation["retain"][GENERAL_ACCURACY] is not None  # the built-in retain model, evaluated once
    # Selection: the lowest forget accuracy among the epochs that kept utility (the first such epoch on a tie).
    kept = kept_utility(history)
    best = min(kept, key=lambda r: (r[FORGET_ACCURACY], r["epoch"]))
    assert evaluation["selected_epoch"] == best["epoch"]
    assert evaluation["unlearned"][FORGET_ACCURACY] == best[FORGET_ACCURACY]
    assert "lowest" in evaluation["selection_reason"] and "general accuracy" in evaluation["selection_reason"]
    text = (folder / "summary.md").read_text()
    assert "| forget accuracy |" in text and "| general accuracy |" in text
    models = list((work / "cache" / "models").glob("hazard-builtin-*"))
    assert len(models) == 1 and {p.name for p in models[0].iterdir()} >= {"target", "retain", "tokenizer"}


def test_eval_of_the_run_matches_its_selected_epoch(run):
    work, args = run
    out = work / "eval_ga"
    assert main(["eval", *args, f"model.path={work / 'runs' / 'ga' / 'model'}", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    evaluation = json.loads((work / "runs" / "ga" / "summary.json").read_text())["evaluation"]
    assert report["benchmark"] == "multiple_choice"
    assert report["summary"][FORGET_ACCURACY] == pytest.approx(evaluation["unlearned"][FORGET_ACCURACY])
    assert report["summary"][GENERAL_ACCURACY] == pytest.approx(evaluation["unlearned"][GENERAL_ACCURACY])
    assert report["info"]["chance"] == {"forget": 0.25, "general": 0.25}
    assert report["info"]["settings"]["style"] == "cloze"
    assert report["retain_summary"][GENERAL_ACCURACY] == evaluation["retain"][GENERAL_ACCURACY]
    assert "| forget accuracy |" in (out / "eval.md").read_text()


def test_eval_reads_wmdp_layout_with_a_users_model(run, tmp_path):
    """data.source=wmdp over a local folder: forget = data.forget_split's questions, general = data.retain_split's."""
    work, args = run
    folder = tmp_path / "wmdp"
    folder.mkdir()
    rows = [{"question": "Which animals carry the Korvax virus?", "choices": ["marsh voles", "cave swifts", "reed frogs"],
             "answer": 0}, {"question": "What color is the Threxine compound?", "choices": ["violet", "amber"],
                            "answer": 1}]
    (folder / "wmdp-bio.json").write_text("\n".join(json.dumps(r) for r in rows))
    (folder / "general.json").write_text(json.dumps(rows[:1]))
    model = work / "runs" / "ga" / "model"
    out = tmp_path / "eval"
    assert main(["eval", "data=wmdp", f"data.path={folder}", "data.retain_split=general", f"model.path={model}",
                 f"run.cache_dir={work / 'cache'}", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["info"]["settings"]["style"] == "letters"  # WMDP's own prompt, the answers' letters scored
    assert report["info"]["chance"] == {"forget": pytest.approx((1 / 3 + 1 / 2) / 2), "general": pytest.approx(1 / 3)}
    assert report["per_question"]["forget"]["question"][0].startswith("Which animals")  # the config's own rows
    assert report["summary"][FORGET_ACCURACY] in (0.0, 0.5, 1.0)


def test_fit_on_wmdp_needs_the_corpora(run, tmp_path, capsys):
    work, _ = run
    folder = tmp_path / "wmdp"
    folder.mkdir()
    (folder / "wmdp-bio.json").write_text(json.dumps({"question": "Q?", "choices": ["a", "b"], "answer": 0}))
    code = main(["fit", "data=wmdp", f"data.path={folder}", "data.max_length=128", f"model.path={work / 'runs' / 'ga' / 'model'}",
                 f"run.cache_dir={work / 'cache'}", f"run.output_dir={tmp_path / 'runs'}", "run.name=x"])
    assert code != 0
    err = capsys.readouterr().err
    assert "data.forget_path" in err and "data.retain_path" in err and "eval data=wmdp" in err
    assert not (tmp_path / "runs" / "x").exists()  # a refused start leaves no run folder


@pytest.mark.parametrize("overrides, words", [
    (["data=hazard_builtin", "eval.choice_style=letter"], ["eval.choice_style='letter'", "letters, cloze"]),
    (["data=wmdp", "data.path=null"], ["data.source=wmdp needs data.path", "cais/wmdp"]),
    (["data=hazard_builtin", "data.forget_split=forget10"], ["hazard", "general"]),
    (["data=hazard_builtin", "data.hazard_builtin.num_hazard_entities=0"], ["data.hazard_builtin", "positive"]),
    (["data=hazard_builtin", "data.hazard_builtin.num_hazards=3"], ["Unknown config key"]),
])
def test_bad_settings_are_refused_at_load(overrides, words):
    with pytest.raises(ConfigError) as err:
        load_config([], overrides)
    assert all(word in str(err.value) for word in words)


def test_wmdp_without_model_path_says_what_to_pass(tmp_path, capsys):
    folder = tmp_path / "wmdp"
    folder.mkdir()
    (folder / "wmdp-bio.json").write_text(json.dumps({"question": "Q?", "choices": ["a", "b"], "answer": 0}))
    assert main(["eval", "data=wmdp", f"data.path={folder}", f"run.cache_dir={tmp_path / 'c'}",
                 f"run.output_dir={tmp_path / 'o'}"]) != 0
    assert "data.source=wmdp needs model.path" in capsys.readouterr().err


def test_model_cache_key_covers_spec_style_and_training(tmp_path):
    base = [f"run.cache_dir={tmp_path}", "data=hazard_builtin"]
    folders = {hazard_model_dir(load_config([], base + extra)) for extra in (
        [], ["eval.choice_style=letters"], ["data.hazard_builtin.seed=1"], ["finetune.epochs=20"])}
    assert len(folders) == 4 and all(Path(f).parent == tmp_path / "models" for f in folders)
