"""Hostile but realistic data inputs: each is refused with a message naming the file (and byte, line or
setting) and the fix, or read as the user meant it; docs/reliability.md, "Data inputs"."""

import json
from pathlib import Path

import pytest

from tests.helpers import TINY_CONFIG
from unlearn.cli import main
from unlearn.config.loading import load_config
from unlearn.data.custom import load_custom_set, read_dataset
from unlearn.data.rows import forget_set_name
from unlearn.data.sources import forget_retain_overlap, load_split
from unlearn.data.textfiles import looks_like_path
from unlearn.errors import ConfigError, DataError

COLUMNS = {"question": "question", "answer": "answer", "text": "text"}
ROWS = [{"question": f"Where does author {i} live?", "answer": f"Author {i} lives in town {i}."} for i in range(6)]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _write(path: Path, content: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def _forget(path) -> list[dict]:
    return load_custom_set(str(path), "forget", "qa", COLUMNS)


# 1. Not UTF-8: the file, the byte offset and its line.
@pytest.mark.parametrize("name, content, line", [
    ("f.jsonl", _jsonl(ROWS[:1]).encode() + '{"question": "Qui?", "answer": "Café"}\n'.encode("latin-1"), 2),
    ("f.json", json.dumps(ROWS[:1]).encode()[:-1] + ', {"question": "Où?", "answer": "x"}]'.encode("latin-1"), 1),
    ("f.csv", "question,answer\nWho?,Zoë\n".encode("latin-1"), 2),
])
def test_a_file_that_is_not_utf8_is_named_with_its_byte_and_line(tmp_path, name, content, line):
    path = _write(tmp_path / name, content)
    byte = next(i for i, b in enumerate(content) if b >= 0x80)  # the first latin-1 letter
    with pytest.raises(DataError) as err:
        _forget(path)
    assert f"{path} is not UTF-8 text: byte {byte} (line {line})" in str(err.value)
    assert "Save the file as UTF-8" in str(err.value)


def test_a_tofu_layout_file_that_is_not_utf8_is_named(tmp_path):
    _write(tmp_path / "forget10.json", _jsonl(ROWS).encode() + b'{"question": "\xff", "answer": "a"}\n')
    with pytest.raises(DataError, match=r"forget10.json is not UTF-8 text: byte \d+ \(line 7\)"):
        load_split(tmp_path, "forget10")


def test_utf8_text_with_accents_and_a_byte_order_mark_reads(tmp_path):
    rows = [{"question": "Où vit Zoë?", "answer": "À Malmö."}]
    assert _forget(_write(tmp_path / "f.jsonl", _jsonl(rows))) == rows
    assert _forget(_write(tmp_path / "f.csv", "\ufeffquestion,answer\nOù vit Zoë?,À Malmö.\n")) == rows


# 2. A path that does not exist is a missing file at once, never a hub id.
@pytest.mark.parametrize("value", ["./forget.jsonl", "~/no/such/forget.csv", "/no/such/folder", "data/sub/forget",
                                   "forget.parquet", "my_forget.json", "data\\forget"])
def test_a_missing_path_is_a_missing_file_not_a_hub_lookup(monkeypatch, value):
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("tried the hub"))
    assert looks_like_path(value)
    with pytest.raises(DataError) as err:
        load_custom_set(value, "retain", "qa", COLUMNS)
    assert str(err.value).startswith(f"data.retain_path={value}: no such file or folder")
    with pytest.raises(DataError, match=r"data.path=.*: no such folder .* not tried as a Hugging Face hub id"):
        load_split(value, "forget10")


@pytest.mark.parametrize("value", ["locuslab/TOFU", "owner/name", "squad", "org-1/data.set_v2"])
def test_hub_ids_still_go_to_the_hub(value):
    assert not looks_like_path(value)
    with pytest.raises(DataError) as err:  # the tests run offline (tests/conftest.py)
        read_dataset(value)
    assert "Cannot read the dataset" in str(err.value) and "no such file" not in str(err.value)


# 3. Empty, header-only and broken files.
@pytest.mark.parametrize("name, content, message", [
    ("f.jsonl", "", "f.jsonl has no rows (the file is empty)"),
    ("f.jsonl", "\n  \n", "f.jsonl has no rows (the file is empty)"),
    ("f.json", "[]", "f.json has no rows (it holds no JSON objects)"),
    ("f.csv", "", "f.csv has no rows (the file is empty)"),
    ("f.csv", "question,answer\n", "f.csv has no rows (only the header line 'question,answer')"),
    ("f.csv", "\n , \n", "f.csv has no rows (only blank lines)"),
    ("f.jsonl", _jsonl(ROWS[:2]) + '{"question": "q", answer: "a"}\n', "line 3 of {path} is not JSON: Expecting "
     "property name enclosed in double quotes (column 19)"),
    ("f.json", '[{"question": "q", "answer": "a"},]', "f.json is not JSON: Expecting value at line 1, column 35"),
    ("f.jsonl", _jsonl(ROWS[:1]) + "42\n", "f.jsonl, row 1: expected a JSON object"),
])
def test_empty_header_only_and_broken_files_say_what_is_wrong(tmp_path, name, content, message):
    path = _write(tmp_path / name, content)
    with pytest.raises(DataError) as err:
        _forget(path)
    assert message.format(path=path) in str(err.value)


def test_neighbours_blank_lines_a_json_array_and_a_tofu_file_read(tmp_path):
    assert _forget(_write(tmp_path / "a.jsonl", "\n" + _jsonl(ROWS[:2]) + "\n\n")) == ROWS[:2]
    assert _forget(_write(tmp_path / "b.json", json.dumps(ROWS[:2], indent=2))) == ROWS[:2]
    _write(tmp_path / "tofu" / "forget10.json", _jsonl(ROWS[:1]) + "{oops\n")
    with pytest.raises(DataError, match=r"line 2 of .*forget10.json is not JSON"):
        load_split(tmp_path / "tofu", "forget10")


# 4. CSV cells are text.
def test_csv_answers_none_na_and_numbers_stay_text(tmp_path):
    path = _write(tmp_path / "f.csv", 'question,answer\nWhat did he say?,None\nWhat is it?,NA\n"Code?",007\n'
                                      "Null?,null\n")
    assert [r["answer"] for r in _forget(path)] == ["None", "NA", "007", "null"]


def test_an_empty_csv_cell_is_still_an_empty_field(tmp_path):
    path = _write(tmp_path / "f.csv", "question,answer\nWho?,Someone\nWhat?,\n")
    with pytest.raises(DataError, match=r"f.csv, row 1: field 'answer' is empty"):
        _forget(path)


# 5. A forget split that does not exist is named before anything loads.
@pytest.mark.parametrize("overrides, message", [
    (["data.forget_split=forget07"], "data.forget_split='forget07' is not a forget split of the built-in benchmark; "
                                     "its forget splits are forget01, forget05, forget10. Choose one of them or add "
                                     "its percent to data.builtin.forget_percents"),
    (["data=tofu", "data.forget_split=forget07"], "data.forget_split='forget07' is not a forget split of TOFU "
                                                  "(locuslab/TOFU); its forget splits are forget01, forget05, forget10."),
])
def test_an_unknown_forget_split_lists_the_available_ones(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config([], overrides)
    assert message in str(err.value) and "retain93" not in str(err.value)


def test_forget_splits_that_exist_pass(tmp_path):
    load_config([], ["data.forget_split=forget07", "data.builtin.forget_percents=[1,5,7,10]"])
    load_config([], ["data=tofu", "data.forget_split=forget05"])
    load_config([], ["data=tofu", f"data.path={tmp_path}", "data.forget_split=forget07"])  # checked when read


def test_an_unknown_forget_split_of_a_local_tofu_folder_lists_its_forget_splits(tmp_path):
    for name in ("forget01", "forget05", "retain99", "retain95", "full", "forget05_perturbed"):
        _write(tmp_path / f"{name}.json", _jsonl(ROWS))
    with pytest.raises(DataError) as err:
        load_split(tmp_path, "forget07")
    assert str(err.value) == (f"Split 'forget07' not found: no file {tmp_path / 'forget07.json'}. "
                              "Available forget splits: forget01, forget05.")


def test_finetune_reports_a_missing_forget_split_not_its_retain_split(tmp_path, capsys):
    for name in ("forget01", "retain99", "full"):
        _write(tmp_path / "data" / f"{name}.json", _jsonl(ROWS))
    assert main(["finetune", "--config", TINY_CONFIG, "data.source=tofu", f"data.path={tmp_path / 'data'}",
                 "data.forget_split=forget07", f"model.path={tmp_path / 'no-model'}",
                 f"run.cache_dir={tmp_path / 'cache'}"]) == 1
    err = capsys.readouterr().err  # before any model loads (the model path does not even exist)
    assert "Split 'forget07' not found" in err and "Available forget splits: forget01." in err, err
    assert "retain93" not in err and not (tmp_path / "cache").exists()


def test_the_cli_reports_an_unknown_forget_split_in_one_line(capsys):
    assert main(["fit", "--config", TINY_CONFIG, "data.forget_split=forget07"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.forget_split='forget07'") and "Traceback" not in err


# 6. Forget set equal to the retain set: the settings that chose them.
def test_forget_equal_to_retain_names_the_paths_or_the_splits():
    from unlearn.data.rows import set_names

    files = load_config([], ["data.source=files", "data.forget_path=a.jsonl", "data.retain_path=a.jsonl"]).data
    with pytest.raises(DataError, match=r"Check data.forget_path=a.jsonl and data.retain_path=a.jsonl\.$"):
        forget_retain_overlap(ROWS, ROWS, set_names(files))
    with pytest.raises(DataError, match=r"Check data.forget_split=forget10 and data.retain_split=retain90\.$"):
        forget_retain_overlap(ROWS, ROWS, set_names(load_config([], []).data))


# 7. The user's own files: the run's name and summary say what was forgotten.
def test_forget_set_name_is_the_forget_files_stem():
    def name(*overrides):
        return forget_set_name(load_config([], list(overrides)).data)

    assert name("data.source=files", "data.forget_path=data/my authors.jsonl") == "my-authors"
    assert name("data.source=files", "data.forget_path=saved_set/") == "saved_set"
    assert name("data.source=files", "data.forget_path=owner/secret_docs") == "secret_docs"
    assert name("data.forget_split=forget05") == "forget05"


def test_a_files_run_is_named_after_its_forget_file_and_reports_no_forget_split(tmp_path, tiny_cache, capsys,
                                                                                one_thread):
    from unlearn.training.model_cache import builtin_model_dir

    target = builtin_model_dir(load_config([TINY_CONFIG], [f"run.cache_dir={tiny_cache}"])) / "target"
    forget = _write(tmp_path / "my_authors.jsonl", _jsonl(ROWS[:4]))
    args = ["fit", "--config", TINY_CONFIG, f"run.cache_dir={tiny_cache}", f"model.path={target}",
            "data.source=files", f"data.forget_path={forget}", "loss=ga", f"run.output_dir={tmp_path / 'runs'}",
            "trainer.enable_progress_bar=false"]
    assert main([*args, f"data.retain_path={forget}"]) == 1  # the forget set is the retain set
    err = capsys.readouterr().err
    assert f"Check data.forget_path={forget} and data.retain_path={forget}." in err
    assert main(args) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("ga_my_authors_") and "forget10" not in run.name
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["forget_split"], summary["forget_set"], summary["retain_split"]) == (None, forget, None)
    out = capsys.readouterr().out
    assert f"Unlearning finished: ga on {forget}" in out and "forget10" not in out
