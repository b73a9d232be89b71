"""Bad inputs end to end: each fails before training with a message saying what to fix, and leaves
every file of the user's (data folder, model folder, earlier run) exactly as it was, with no new
run folder behind it."""

import hashlib
import json
from pathlib import Path

import pytest

from tests.helpers import QA, tiny_model, tiny_tokenizer
from unlearn.cli import main
from unlearn.data.formatting import PromptFormat, prompt_ids
from unlearn.models.loading import load_model, load_tokenizer
from unlearn.errors import ModelLoadError

FORGET, RETAIN = QA[:5], QA[5:]


def _write_split(folder: Path, name: str, rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _digest(*folders: Path) -> dict:
    return {p: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's files: a model folder (tokenizer without a pad token), a data folder and an earlier run."""
    root = tmp_path_factory.mktemp("user")
    tokenizer = tiny_tokenizer()
    assert tokenizer.pad_token is None
    tiny_model(tokenizer).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "tokenizer_only")
    _write_split(root / "data", "forget10", FORGET)
    _write_split(root / "data", "retain90", RETAIN)
    (root / "runs" / "old" / "model").mkdir(parents=True)
    (root / "runs" / "old" / "config.yaml").write_text("run:\n  name: old\n")
    (root / "runs" / "old" / "model" / "model.safetensors").write_bytes(b"weights")
    return root


def _args(user: Path, data: Path, *extra) -> list[str]:
    return ["fit", "data.source=tofu", f"data.path={data}", f"model.path={user / 'model'}", "eval.enabled=false",
            f"run.output_dir={user / 'runs'}", "run.name=new", "trainer.max_epochs=2", "data.batch_size=4",
            "trainer.enable_progress_bar=false", f"run.cache_dir={user / 'cache'}", *extra]


def _broken(rows, changes: dict[int, dict]):
    return [{**r, **changes.get(i, {})} for i, r in enumerate(rows)]


# name: (forget rows or None for no file, retain rows, extra overrides, exit code, message)
CASES = {
    "missing field": ([{"question": "q?"}] + FORGET, RETAIN, [], 1,
                      "forget10.json, row 0: missing field(s) ['answer']; the row has ['question']."),
    "empty forget set": ([], RETAIN, [], 1, "forget10.json has no rows: an unlearning run needs at least one example."),
    "empty answer": (_broken(FORGET, {2: {"answer": "  "}}), RETAIN, [], 1,
                     "forget10.json, row 2: field 'answer' is empty; every example needs a question and an "
                     "answer to learn or forget. Fill it in or remove the row."),
    "answer not text": (_broken(FORGET, {1: {"answer": 42}}), RETAIN, [], 1,
                        "forget10.json, row 1: field 'answer' must be text, got 42."),
    "forget set inside retain set": (FORGET, RETAIN + FORGET, [], 1,
                                     "All 5 forget rows also appear in the retain set (same question and answer)"),
    "missing split": (None, RETAIN, [], 1, "Split 'forget10' not found"),
    "prompt longer than max_length": (FORGET, RETAIN, ["data.max_length=8"], 1,
                                      "forget split, row 0: The prompt of question 'What is the home city of writer "
                                      "number 0?'... is"),
    "model folder missing": (FORGET, RETAIN, ["model.path=/nonexistent/model"], 1,
                             "Cannot load tokenizer from '/nonexistent/model': no such local folder, and not reachable "
                             "as a Hugging Face hub id (offline, misspelt, or gated)."),
    "hub id that cannot be reached": (FORGET, RETAIN, ["model.path=no-such-org/no-such-model"], 1,
                                      "Cannot load tokenizer from 'no-such-org/no-such-model': no such local folder"),
    "folder without weights": (FORGET, RETAIN, ["model.path={user}/tokenizer_only"], 1,
                               "Cannot load causal language model from '{user}/tokenizer_only': the folder exists but "
                               "does not hold a loadable causal language model."),
    "bad config value": (FORGET, RETAIN, ["optim.lr=0"], 2, "optim.lr must be > 0, got 0.0"),
    "existing run folder": (FORGET, RETAIN, ["run.name=old"], 2, "already exists and is not empty"),
    "run folder inside the input model": (FORGET, RETAIN, ["run.output_dir={user}/model"], 2,
                                          "overlap; the run could overwrite its own input"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_clearly_and_changes_no_user_file(user, tmp_path, capsys, case, one_thread):
    forget, retain, extra, code, message = CASES[case]
    data = tmp_path / "data"
    _write_split(data, "retain90", retain)
    if forget is not None:
        _write_split(data, "forget10", forget)
    before = _digest(user, data)
    assert main(_args(user, data, *[e.format(user=user) for e in extra])) == code
    err = capsys.readouterr().err
    assert message.format(user=user) in err, err
    assert _digest(user, data) == before
    assert sorted(p.name for p in (user / "runs").iterdir()) == ["old"]  # a failed start leaves no run folder


def test_overlap_and_truncation_are_reported_in_the_log_and_summary(user, tmp_path, capsys, one_thread):
    tokenizer = load_tokenizer(str(user / "model"))
    longest_prompt = max(len(prompt_ids(tokenizer, PromptFormat("plain"), r["question"])) for r in QA)
    data = tmp_path / "data"
    _write_split(data, "forget10", FORGET)
    _write_split(data, "retain90", RETAIN + FORGET[:1])
    before = _digest(user, data)
    assert main(_args(user, data, f"data.max_length={longest_prompt + 2}", "run.name=warned")) == 0
    out = capsys.readouterr().out
    assert f"Warning: 5 forget, 20 retain examples were cut to data.max_length={longest_prompt + 2}" in out
    assert "Warning: 1 forget rows are also in the retain set." in out
    report = json.loads((user / "runs" / "warned" / "summary.json").read_text())["data"]
    assert report["forget_in_retain"] == 1 and report["truncated"] == {"forget": 5, "retain": 20}
    after = _digest(user, data)
    assert all(after.get(path) == stamp for path, stamp in before.items())  # the new run only added files


def test_tokenizer_without_pad_token_pads_with_eos(user):
    tokenizer = load_tokenizer(str(user / "model"))
    assert tokenizer.pad_token == tokenizer.eos_token and tokenizer.pad_token_id == tokenizer.eos_token_id


def test_tokenizer_without_eos_is_refused(user, tmp_path):
    tokenizer = load_tokenizer(str(user / "model"))
    tokenizer.eos_token = None
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path / "no_eos")
    with pytest.raises(ModelLoadError, match="has no EOS token; answers must end with one"):
        load_tokenizer(str(tmp_path / "no_eos"))


def test_model_load_error_names_the_path_and_the_cause(tmp_path):
    with pytest.raises(ModelLoadError) as err:
        load_model(str(tmp_path / "nope"))
    assert f"Cannot load causal language model from '{tmp_path / 'nope'}': no such local folder" in str(err.value)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="the folder exists but does not hold a loadable causal language model"):
        load_model(str(tmp_path / "junk"))
