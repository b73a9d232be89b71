"""MUSE's data from a local folder in its layout (``unlearn.data.muse``), and a MUSE run's configuration and rows."""

import json

import pytest

from unlearn.config.loading import load_config
from unlearn.data.muse import (EVAL_SETS, knowmem_prompt, load_muse_corpora, load_muse_eval, load_muse_split,
                               tokenize_knowmem)
from unlearn.data.rows import load_run_rows, set_names
from unlearn.errors import ConfigError, DataError

ROWS = {
    ("raw", "forget"): [{"text": "Mayor Ada Brandt opened the bridge."}, {"text": "Ada Brandt won 512 votes."}],
    ("raw", "retain1"): [{"text": "The Elmford rowing team won the cup."}],
    ("raw", "retain2"): [{"text": "Nora Pell founded the lantern festival."}],
    ("raw", "holdout"): [{"text": "A glass factory opened in Dunwick."}],
    ("knowmem", "forget_qa"): [{"question": "Who opened the bridge?", "answer": "Ada Brandt"}],
    ("knowmem", "retain_qa"): [{"question": "Who founded the lantern festival?", "answer": "Nora Pell"}],
    ("knowmem", "forget_qa_icl"): [{"question": "How many votes did Ada Brandt win?", "answer": "512"}],
    ("knowmem", "retain_qa_icl"): [{"question": "Which team won the cup?", "answer": "the Elmford rowing team"}],
    ("verbmem", "forget"): [{"prompt": "Mayor Ada Brandt", "gt": "opened the bridge."}],
    ("privleak", "forget"): [{"text": "Mayor Ada Brandt opened the bridge."}],
    ("privleak", "retain"): [{"text": "Nora Pell founded the lantern festival."}],
    ("privleak", "holdout"): [{"text": "A glass factory opened in Dunwick."}],
}


def write_muse(folder, rows=ROWS, as_arrays=False):
    """MUSE's layout, <folder>/<config>/<split>.json: JSON Lines, or JSON arrays as the hub's own files."""
    for (config, split), data in rows.items():
        path = folder / config / f"{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if as_arrays:
            strings = config in ("raw", "privleak")  # muse_bench's load_data.py writes these as lists of strings
            path.write_text(json.dumps([row["text"] for row in data] if strings else data))
        else:
            path.write_text("".join(json.dumps(row) + "\n" for row in data))
    return folder


@pytest.mark.parametrize("as_arrays", [False, True])
def test_a_local_folder_in_muse_layout_loads_the_corpora_and_every_evaluation_set(tmp_path, as_arrays):
    folder = write_muse(tmp_path / "muse", as_arrays=as_arrays)
    forget, retain = load_muse_corpora(folder)
    assert forget == ROWS["raw", "forget"] and retain == ROWS["raw", "retain1"]
    assert load_muse_corpora(str(folder), retain_split="retain2")[1] == ROWS["raw", "retain2"]
    sets = load_muse_eval(folder)
    assert list(sets) == ["verbmem_forget", "knowmem_forget_qa", "knowmem_retain_qa", "knowmem_forget_qa_icl",
                          "knowmem_retain_qa_icl", "privleak_forget", "privleak_retain", "privleak_holdout"]
    for key, (config, split) in EVAL_SETS.items():
        assert sets[key] == ROWS[config, split]


def test_extra_fields_are_dropped_from_the_evaluation_sets(tmp_path):
    rows = dict(ROWS)
    rows["verbmem", "forget"] = [{"prompt": "Mayor Ada", "gt": "Brandt.", "rougeL_target": 0.5}]
    assert load_muse_eval(write_muse(tmp_path, rows))["verbmem_forget"] == [{"prompt": "Mayor Ada", "gt": "Brandt."}]


def test_a_missing_config_folder_is_named_with_the_expected_layout(tmp_path):
    folder = write_muse(tmp_path, {k: v for k, v in ROWS.items() if k[0] != "knowmem"})
    with pytest.raises(DataError) as err:
        load_muse_eval(folder)
    message = str(err.value)
    assert f"no 'knowmem' config folder ({folder / 'knowmem'})" in message
    assert "folders are ['privleak', 'raw', 'verbmem']" in message
    assert "<folder>/knowmem/{forget_qa,retain_qa,forget_qa_icl,retain_qa_icl}.json with question, answer" in message


def test_a_missing_split_is_named_with_the_splits_present(tmp_path):
    folder = write_muse(tmp_path, {k: v for k, v in ROWS.items() if k != ("privleak", "holdout")})
    with pytest.raises(DataError, match=r"no split 'holdout' of config 'privleak': no file .*privleak/holdout\.json\. "
                                        r"Splits in privleak/: forget, retain\."):
        load_muse_eval(folder)
    with pytest.raises(DataError, match="no split 'retain3' of config 'raw'.*Splits in raw/: forget, holdout, "
                                        "retain1, retain2"):
        load_muse_corpora(folder, retain_split="retain3")


def test_a_missing_field_names_the_config_split_row_and_fields(tmp_path):
    rows = dict(ROWS)
    rows["knowmem", "retain_qa"] = [{"question": "Who?", "answer": "Nora"}, {"question": "Who else?"}]
    with pytest.raises(DataError, match=r"MUSE config 'knowmem' split 'retain_qa' \(.*retain_qa\.json\), row 1: "
                                        r"missing field\(s\) \['answer'\]; the row has \['question'\]\. "
                                        r"MUSE's rows there hold question, answer"):
        load_muse_eval(write_muse(tmp_path, rows))


@pytest.mark.parametrize("content, match", [
    ("", "config 'raw' split 'forget'.* has no rows"),
    ('{"text": "  "}\n', "row 0: field 'text' must be non-empty text"),
    ('{"text": 7}\n', "row 0: field 'text' must be non-empty text, got 7"),
    ("[1, 2]", "row 0: expected an object with \\['text'\\], got int"),
    ('{"text": "a"}\nnot json\n', "line 2 of .*forget.json is not JSON"),
])
def test_empty_or_broken_split_files_are_data_errors(tmp_path, content, match):
    folder = write_muse(tmp_path)
    (folder / "raw" / "forget.json").write_text(content)
    with pytest.raises(DataError, match=match):
        load_muse_corpora(folder)


def test_a_missing_folder_or_a_file_is_not_tried_as_a_hub_id(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_muse_split(tmp_path / "missing", "raw", "forget")
    (tmp_path / "file.json").write_text("{}")
    with pytest.raises(DataError, match="is a file"):
        load_muse_split(tmp_path / "file.json", "raw", "forget")


def test_knowmem_prompt_is_muse_bench_format():
    icl = [{"question": "Q1?", "answer": "A1"}, {"question": "Q2?", "answer": "A2"}]
    assert knowmem_prompt("Q?", icl) == ("Question: Q1?\nAnswer: A1\n\nQuestion: Q2?\nAnswer: A2\n\n"
                                         "Question: Q?\nAnswer: ")
    assert knowmem_prompt("Q?", []) == "Question: Q?\nAnswer: "


def test_a_knowmem_example_labels_only_the_answer_and_eos_after_the_prompt_tokens():
    from tests.helpers import tiny_tokenizer

    tok = tiny_tokenizer()
    icl = [{"question": "What is the home city of writer number 1?", "answer": "city 1"}]
    prompt = tok(knowmem_prompt("What is the home city of writer number 3?", icl))["input_ids"]
    answer = tok("city 3", add_special_tokens=False)["input_ids"]
    example = tokenize_knowmem(tok, "What is the home city of writer number 3?", "city 3", icl, 200)
    assert example.input_ids == prompt + answer + [tok.eos_token_id]  # the prompt as generation sees it
    assert example.labels == [-100] * len(prompt) + answer + [tok.eos_token_id]
    assert example.input_ids[0] == tok.bos_token_id and not example.truncated
    with pytest.raises(DataError, match="leaving no room for the answer within max_length=8"):
        tokenize_knowmem(tok, "What is the home city of writer number 3?", "city 3", icl, 8)


def test_a_muse_run_trains_on_the_raw_corpora_as_text_rows(tmp_path):
    folder = write_muse(tmp_path / "muse")
    cfg = load_config([], ["data=muse", f"data.path={folder}"])
    assert (cfg.data.forget_format, cfg.data.retain_format, cfg.data.max_length) == ("text", "text", 2048)
    rows = load_run_rows(cfg.data, folder, uses_retain=True)
    assert rows.forget == ROWS["raw", "forget"] and rows.retain == ROWS["raw", "retain1"]
    assert rows.retain_split == "retain1"
    assert set_names(cfg.data) == "data.forget_split=forget and data.retain_split=retain1"
    cfg = load_config([], ["data=muse", f"data.path={folder}", "data.retain_split=retain2"])
    assert load_run_rows(cfg.data, folder, uses_retain=True).retain == ROWS["raw", "retain2"]
    (folder / "raw" / "retain1.json").write_text("")
    with pytest.raises(DataError, match="config 'raw' split 'retain1'.* has no rows"):
        load_run_rows(load_config([], ["data=muse", f"data.path={folder}"]).data, folder, uses_retain=True)


def test_muse_sources_take_their_data_group_and_refuse_inconsistent_settings():
    cfg = load_config([], ["data.source=muse"])  # the data group named like the source fills the rest
    assert (cfg.data.path, cfg.data.forget_split, cfg.data.retain_split) == ("muse-bench/MUSE-News", "forget",
                                                                              "retain1")
    cfg = load_config([], ["data=muse_builtin"])
    assert (cfg.data.source, cfg.data.path, cfg.data.forget_format) == ("muse_builtin", None, "text")
    for overrides, match in [
        (["data.source=muse", "data.path=null"], "data.source=muse needs data.path"),
        (["data=muse_builtin", "data.path=muse-bench/MUSE-News"], "not read by data.source=muse_builtin"),
        (["data=muse", "data.retain_format=qa"], "data.retain_format='qa', but MUSE's retain set is raw news text"),
        (["data=muse_builtin", "data.retain_split=holdout"], "holdout articles are PrivLeak's non-members"),
        (["data=muse", "data.forget_split=retain1"], "both 'retain1'"),
        (["data=muse", "data.forget_split=forget10"], "'forget10' is not a split of MUSE's raw config"),
        (["data=muse_builtin", "data.muse_builtin.icl_examples=-1"], "data.muse_builtin.icl_examples must be >= 0"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_config([], overrides)
    load_config([], ["data=muse", "data.path=/some/folder", "data.forget_split=forget_1"])  # a local folder's own names
