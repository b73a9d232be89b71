"""``python -m unlearn attack`` end to end on the tiny built-in models: reports, retain baseline, untouched models."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_CONFIG
from unlearn.cli import main
from unlearn.config.loading import load_config
from unlearn.names import FORGET_QUALITY, MODEL_UTILITY
from unlearn.training.assets import resolve_assets

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
FORGET_KEYS = ("forget/probability", "forget/rouge_l", "forget/truth_ratio")


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def work(tiny_cache, tmp_path_factory):
    """A run folder shaped as fit leaves it (``model/`` beside ``config.yaml``) holding the tiny target model."""
    root = tmp_path_factory.mktemp("attack")
    assets = resolve_assets(load_config([TINY_CONFIG], [f"run.cache_dir={tiny_cache}"]))
    run = root / "runs" / "npo_run"
    shutil.copytree(assets.target, run / "model")
    (run / "config.yaml").write_text("run: {}\n")
    (run / "summary.md").write_text("the run's own summary\n")
    return {"cache": tiny_cache, "root": root, "run": run, "assets": assets}


def _args(work, *extra):
    # The tiny forget split is one author of 5 rows: the attacker gets 1 question of it, 4 are held out.
    return ["attack", "--config", TINY_CONFIG, f"run.cache_dir={work['cache']}",
            f"run.output_dir={work['root'] / 'runs'}", "attack.relearn.unit=question", "attack.relearn.fraction=0.2",
            "attack.relearn.steps=3", "attack.relearn.batch_size=2", "trainer.enable_progress_bar=false", *extra]


def test_every_attack_writes_its_report_beside_the_run_and_leaves_the_model_as_it_was(work):
    run = work["run"]
    before = _hashes(run / "model")
    threads = torch.get_num_threads()
    assert main(_args(work, f"model.path={run / 'model'}")) == 0
    torch.set_num_threads(threads)
    assert _hashes(run / "model") == before  # byte for byte: the attacks ran on copies in memory
    assert (run / "summary.md").read_text() == "the run's own summary\n"

    report = json.loads((run / "attack.json").read_text())
    assert report["model"] == str(run / "model") and report["retain_model"] == str(work["assets"].retain)
    assert list(report["attacks"]) == ["relearn", "quantize", "paraphrase"]
    for name, entry in report["attacks"].items():
        for who in ("model", "retain"):
            for when in ("before", "after"):
                summary = entry[who][when]
                assert all(summary[key] is not None for key in (*FORGET_KEYS, MODEL_UTILITY)), (name, who, when)
        assert entry["model"]["before"][FORGET_QUALITY] is not None and entry["retain"]["before"][FORGET_QUALITY] == 1.0
        change = entry["change"]
        for key in (*FORGET_KEYS, MODEL_UTILITY):  # the retain model's change is what the difference subtracts
            model = entry["model"]["after"][key] - entry["model"]["before"][key]
            retain = entry["retain"]["after"][key] - entry["retain"]["before"][key]
            assert change["model"][key] == pytest.approx(model) and change["retain"][key] == pytest.approx(retain)
            assert change["beyond_retain"][key] == pytest.approx(model - retain)

    relearn = report["attacks"]["relearn"]
    split = relearn["split"]
    assert len(split["attack_rows"]) == 1 and len(split["held_out_rows"]) == 4
    assert not set(split["attack_rows"]) & set(split["held_out_rows"]) and relearn["held_out_rows"] == 4
    assert relearn["change"]["retain"]["forget/probability"] != 0  # the retain model was fine-tuned too
    assert relearn["settings"]["steps"] == 3
    paraphrase = report["attacks"]["paraphrase"]
    assert paraphrase["model"]["after"][MODEL_UTILITY] == pytest.approx(paraphrase["model"]["before"][MODEL_UTILITY])
    assert paraphrase["model"]["before"] == report["attacks"]["quantize"]["model"]["before"]  # evaluated once
    text = (run / "attack.md").read_text()
    assert "## relearn" in text and "## quantize" in text and "change beyond retain" in text


def test_results_beside_a_run_are_replaced_only_with_overwrite(work, capsys):
    run = work["run"]
    if not (run / "attack.json").exists():
        pytest.skip("needs the first test's report")
    stamp = (run / "attack.json").stat().st_mtime_ns
    assert main(_args(work, f"model.path={run / 'model'}", "attack.name=paraphrase")) == 2
    assert "run.overwrite=true" in capsys.readouterr().err
    assert (run / "attack.json").stat().st_mtime_ns == stamp
    before = _hashes(run / "model")
    assert main(_args(work, f"model.path={run / 'model'}", "attack.names=[quantize]", "attack.quantize.bits=8",
                      "run.overwrite=true")) == 0
    assert list(json.loads((run / "attack.json").read_text())["attacks"]) == ["quantize"]
    assert _hashes(run / "model") == before and (run / "summary.md").is_file() and (run / "config.yaml").is_file()


def test_a_model_outside_a_run_gets_an_attack_folder_of_its_own(work):
    target = work["assets"].target
    assert main(_args(work, f"model.path={target}", "attack.name=paraphrase", "run.name=plain",
                      "attack.retain_baseline=false")) == 0
    out = work["root"] / "runs" / "attack_plain"
    assert sorted(p.name for p in out.iterdir()) == ["attack.json", "attack.md"]
    entry = json.loads((out / "attack.json").read_text())["attacks"]["paraphrase"]
    assert entry["retain"] is None and entry["change"]["beyond_retain"] is None
    assert entry["model"]["after"][FORGET_QUALITY] is None and "No retain model" in (out / "attack.md").read_text()


def test_relearning_on_the_attackers_own_file_holds_out_the_whole_forget_split(work, tmp_path):
    own = tmp_path / "known.jsonl"
    own.write_text("".join(json.dumps({"q": f"Who wrote book {i}?", "a": f"Author {i} wrote it."}) + "\n"
                           for i in range(3)))
    assert main(_args(work, "attack.name=relearn", "run.name=own_file", f"attack.relearn.data_path={own}",
                      "data.columns.question=q", "data.columns.answer=a")) == 0
    entry = json.loads((work["root"] / "runs" / "attack_own_file" / "attack.json").read_text())["attacks"]["relearn"]
    assert "split" not in entry and entry["held_out_rows"] == 5
    assert "3 rows of" in entry["description"] and entry["settings"]["data_path"] == str(own)


def test_one_author_cannot_be_split_by_author_and_nothing_is_written(work, capsys):
    args = [a for a in _args(work, "attack.name=relearn", "run.name=one_author") if "relearn.unit" not in a]
    assert main(args) == 1
    assert "attack.relearn.unit=question" in capsys.readouterr().err
    assert not (work["root"] / "runs" / "attack_one_author").exists()


def test_own_files_have_no_forget_metrics_to_attack(work, capsys):
    assert main(_args(work, "data.source=files", "data.forget_path=x.jsonl")) == 2
    assert "TOFU's forget metrics" in capsys.readouterr().err
