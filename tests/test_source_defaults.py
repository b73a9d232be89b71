"""Defaults that follow the data source: ``data.source=tofu`` gets TOFU's lengths without the ``data=tofu`` group.

TOFU's answers and generations are long (``data.max_length=500``, ``eval.max_new_tokens=200``); the
built-in benchmark's 128 / 48 would cut them. A value a YAML file or override sets always wins.
"""

import pytest

from tests.helpers import TOFU_LOCAL_CONFIG
from unlearn.config.loading import load_config

TOFU = (500, 200)
BUILTIN = (128, 48)


def _lengths(files=(), overrides=()):
    cfg = load_config(list(files), list(overrides))
    return cfg.data.max_length, cfg.eval.max_new_tokens


def test_tofu_source_alone_gets_tofus_lengths(tmp_path):
    assert _lengths([], ["data.source=tofu"]) == TOFU
    assert _lengths([], ["data.source=tofu", "data.path=../shared/data/tofu"]) == TOFU
    (tmp_path / "mine.yaml").write_text("data:\n  source: tofu\n  forget_split: forget05\n")
    assert _lengths([str(tmp_path / "mine.yaml")]) == TOFU
    # The source may come from a file and the override order does not matter.
    (tmp_path / "builtin.yaml").write_text("data:\n  source: builtin\n")
    assert _lengths([str(tmp_path / "builtin.yaml")], ["data.source=tofu"]) == TOFU


@pytest.mark.parametrize("files, overrides, expected", [
    ([], ["data.source=tofu", "data.max_length=256"], (256, 200)),
    ([], ["eval.max_new_tokens=64", "data.source=tofu"], (500, 64)),
    # A value equal to the built-in default is still the user's choice.
    ([], ["data.source=tofu", "data.max_length=128", "eval.max_new_tokens=48"], BUILTIN),
    ([], ["data=tofu", "data.max_length=300"], (300, 200)),
    (["experiment/tofu_llama2"], ["eval.max_new_tokens=32"], (500, 32)),
])
def test_an_explicit_value_on_the_command_line_wins(files, overrides, expected):
    assert _lengths(files, overrides) == expected


def test_an_explicit_value_in_a_yaml_file_wins(tmp_path):
    (tmp_path / "lengths.yaml").write_text("data:\n  max_length: 96\neval:\n  max_new_tokens: 16\n")
    assert _lengths([str(tmp_path / "lengths.yaml")], ["data.source=tofu"]) == (96, 16)
    # Set in a file the user's file builds on (`defaults:`), or with the source in the same file.
    (tmp_path / "exp.yaml").write_text("defaults: [data/tofu, lengths.yaml]\n")
    assert _lengths([str(tmp_path / "exp.yaml")]) == (96, 16)
    (tmp_path / "one.yaml").write_text("data:\n  source: tofu\n  max_length: 64\n")
    assert _lengths([str(tmp_path / "one.yaml")]) == (64, 200)


def test_the_tofu_group_still_works_and_the_source_alone_gives_the_same_config():
    assert _lengths([], ["data=tofu"]) == _lengths(["data/tofu"]) == _lengths([TOFU_LOCAL_CONFIG]) == TOFU
    cfg = load_config([], ["data=tofu"])
    assert (cfg.data.source, cfg.data.path, cfg.eval.max_rows) == ("tofu", "locuslab/TOFU", None)
    # configs/data/tofu.yaml is the one copy of TOFU's values: the source alone takes all of them.
    assert load_config([], ["data.source=tofu"]) == cfg
    assert load_config([], ["data.source=tofu", "loss=npo", "data.forget_split=forget01"]) == \
        load_config([], ["data=tofu", "loss=npo", "data.forget_split=forget01"])
    local = load_config([], ["data.source=tofu", "data.path=../shared/data/tofu"])
    assert local == load_config([TOFU_LOCAL_CONFIG])


def test_other_sources_keep_the_built_in_defaults():
    assert _lengths() == _lengths([], ["data.source=builtin"]) == _lengths(["data/builtin"]) == BUILTIN
    assert _lengths([], ["data.source=files", "data.forget_path=f.json", "data.retain_path=r.json"]) == BUILTIN


def test_show_config_prints_the_source_defaults(capsys):
    from unlearn.cli import main

    assert main(["fit", "--show-config", "data.source=tofu"]) == 0
    out = capsys.readouterr().out
    assert "max_length: 500" in out and "max_new_tokens: 200" in out


def test_tofu_answers_fit_the_source_default_and_a_shorter_explicit_length_is_reported(tofu_dir):
    """No silent cut: TOFU's forget10 fits the default; an explicit 128 cuts some, and the run says so."""
    from unlearn.data.datamodule import tokenize_split
    from unlearn.data.formatting import PromptFormat
    from unlearn.data.sources import load_split
    from unlearn.models.loading import train_tokenizer
    from unlearn.reporting.summary import data_warnings

    rows = load_split(tofu_dir, "forget10")
    tokenizer = train_tokenizer([f"{r['question']} {r['answer']}" for r in rows], 2000)
    default = load_config([], ["data.source=tofu"]).data.max_length
    assert tokenize_split(rows, tokenizer, PromptFormat("plain"), default).truncated == 0
    short = load_config([], ["data.source=tofu", "data.max_length=128"]).data.max_length
    cut = tokenize_split(rows, tokenizer, PromptFormat("plain"), short).truncated
    assert cut > 0
    assert data_warnings({"truncated": {"forget": cut}, "max_length": short}) == [
        f"{cut} forget examples were cut to data.max_length=128; raise it to train on whole answers."]
