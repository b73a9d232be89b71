"""A MUSE run as users start it (`fit data=muse_builtin`, shrunk): MUSE's numbers in every report, then `eval`."""

import json
from pathlib import Path

import pytest
import torch

from unlearn.cli import main
from unlearn.names import KNOWMEM_FORGET, KNOWMEM_RETAIN, PRIVLEAK, VERBMEM, mia_key

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
MUSE_TINY = str(Path(__file__).with_name("configs") / "muse_tiny.yaml")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("muse")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        args = ["--config", MUSE_TINY, f"run.cache_dir={work / 'cache'}", f"run.output_dir={work / 'runs'}"]
        assert main(["fit", *args, "run.name=npo"]) == 0
        yield work, args
    finally:
        torch.set_num_threads(threads)


def test_fit_reports_verbmem_knowmem_and_privleak(run):
    work, _ = run
    folder = work / "runs" / "npo"
    evaluation = json.loads((folder / "summary.json").read_text())["evaluation"]
    assert evaluation["benchmark"] == "muse"
    for column in ("target", "retain", "unlearned"):
        assert {VERBMEM, KNOWMEM_FORGET, KNOWMEM_RETAIN, PRIVLEAK, mia_key("min_k")} <= set(evaluation[column])
    assert evaluation["retain"][PRIVLEAK] == 0.0  # the retrained model against itself, by definition
    assert evaluation["target"][PRIVLEAK] is not None
    assert [r["epoch"] for r in evaluation["history"]] == [0, 1, 2]
    # The collapse stop and selection watch KnowMem on retain, MUSE's utility.
    assert "privleak" in evaluation["selection_reason"] and "knowmem retain" in evaluation["selection_reason"]
    text = (folder / "summary.md").read_text()
    assert all(title in text for title in ("| VerbMem (forget) |", "| KnowMem (retain) |", "| PrivLeak |"))


def test_eval_of_a_muse_run_writes_musees_numbers(run, capsys):
    work, args = run
    out = work / "eval_npo"
    assert main(["eval", *args, f"model.path={work / 'runs' / 'npo' / 'model'}", "--out", str(out)]) == 0
    report = json.loads((out / "eval.json").read_text())
    assert report["benchmark"] == "muse" and report["summary"][PRIVLEAK] is not None
    assert "| PrivLeak |" in (out / "eval.md").read_text()
    assert "Sample generations (verbmem_forget)" in (out / "eval.md").read_text()
