"""Benchmark loading, prompt formatting and the forget/retain data module."""

import json

import pytest

from unlearn.data.datamodule import UnlearningDataModule
from unlearn.data.formatting import IGNORE_INDEX, PromptFormat, collate, tokenize_qa
from unlearn.data.sources import (DataError, load_idk_answers, load_split, read_jsonl, retain_split_for,
                                  validate_rows)
from tests.helpers import QA, tiny_tokenizer

TOFU_ROWS = {"full": 4000, "forget10": 400, "retain90": 3600, "forget01_perturbed": 40, "retain_perturbed": 400,
             "real_authors_perturbed": 100, "world_facts_perturbed": 117}


@pytest.mark.parametrize("split, rows", TOFU_ROWS.items())
def test_loader_reads_real_tofu(tofu_dir, split, rows):
    loaded = load_split(tofu_dir, split)
    assert len(loaded) == rows
    assert {"question", "answer"} <= set(loaded[0])


def test_tofu_forget_is_last_rows_of_full(tofu_dir):
    full, forget = load_split(tofu_dir, "full"), load_split(tofu_dir, "forget10")
    assert full[-len(forget):] == forget
    assert load_split(tofu_dir, "retain90") == full[:-len(forget)]
    perturbed = load_split(tofu_dir, "forget10_perturbed", ("question", "answer", "paraphrased_answer", "perturbed_answer"))
    assert all(len(r["perturbed_answer"]) == 5 for r in perturbed)


def test_idk_answers_from_tofu(tofu_dir):
    answers = load_idk_answers(tofu_dir)
    assert len(answers) == 100 and all(a.strip() for a in answers)


def test_idk_answers_from_a_given_file_and_clear_errors(tmp_path, tofu_dir, caplog):
    (tmp_path / "refusals.txt").write_text("I cannot say.\n\nNo idea.\n")
    # data.idk_path wins over the source folder's list, e.g. for TOFU loaded from the hub.
    assert load_idk_answers("locuslab/TOFU", tmp_path / "refusals.txt") == ["I cannot say.", "No idea."]
    assert load_idk_answers(tofu_dir, tmp_path / "refusals.txt") == ["I cannot say.", "No idea."]
    with pytest.raises(DataError, match="data.idk_path=.*no such file"):
        load_idk_answers(tofu_dir, tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="holds no answers"):
        load_idk_answers(tofu_dir, tmp_path / "empty.txt")
    # The hub dataset has no refusal list: the built-in one is used, and the user is told.
    with caplog.at_level("WARNING"):
        answers = load_idk_answers("locuslab/TOFU")
    assert answers and "data.idk_path" in caplog.text


def test_missing_split_empty_split_and_missing_field(tmp_path):
    (tmp_path / "full.json").write_text(json.dumps({"question": "q"}) + "\n")
    (tmp_path / "forget10.json").write_text("")
    with pytest.raises(DataError, match="Available splits: forget10, full"):
        load_split(tmp_path, "retain90")
    with pytest.raises(DataError, match="no rows"):
        load_split(tmp_path, "forget10")
    with pytest.raises(DataError, match=r"missing field\(s\) \['answer'\]"):
        load_split(tmp_path, "full")
    with pytest.raises(DataError, match="'answer' is empty"):
        validate_rows([{"question": "q", "answer": "  "}], ("question", "answer"), "x")


def test_jsonl_and_json_array_both_read(tmp_path):
    rows = [{"question": "a", "answer": "b"}, {"question": "c", "answer": "d"}]
    (tmp_path / "l.json").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "a.json").write_text(json.dumps(rows))
    assert read_jsonl(tmp_path / "l.json") == rows == read_jsonl(tmp_path / "a.json")


def test_retain_split_names():
    assert retain_split_for("forget10") == "retain90"
    assert retain_split_for("forget01") == "retain99"
    with pytest.raises(DataError, match="data.retain_split"):
        retain_split_for("my_forget")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


@pytest.mark.parametrize("fmt", ["plain", "llama2"])
def test_labels_cover_answer_and_eos_only(tokenizer, fmt):
    row = QA[3]
    ex = tokenize_qa(tokenizer, PromptFormat(fmt), row["question"], row["answer"], 128)
    answer_ids = tokenizer(PromptFormat(fmt).answer(row["answer"]), add_special_tokens=False)["input_ids"]
    labelled = [t for t in ex.labels if t != IGNORE_INDEX]
    assert labelled == answer_ids + [tokenizer.eos_token_id]
    n_prompt = len(ex.labels) - len(labelled)
    assert ex.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert tokenizer.decode(ex.input_ids[:n_prompt]).endswith("Answer:" if fmt == "plain" else "[/INST]")
    assert ex.input_ids[0] == tokenizer.bos_token_id and not ex.truncated


def test_padding_with_eos_keeps_the_real_eos_label(tokenizer):
    assert tokenizer.pad_token_id is None or tokenizer.pad_token_id == tokenizer.eos_token_id
    fmt = PromptFormat("plain")
    short = tokenize_qa(tokenizer, fmt, "Q?", "A.", 64)
    long = tokenize_qa(tokenizer, fmt, QA[0]["question"], QA[0]["answer"], 64)
    batch = collate([short, long], pad_token_id=tokenizer.eos_token_id)
    row = batch["labels"][0]
    n = len(short.input_ids)
    assert row[n - 1] == tokenizer.eos_token_id  # the real EOS is a label
    assert (row[n:] == IGNORE_INDEX).all() and (batch["attention_mask"][0, n:] == 0).all()


def test_truncation_keeps_an_answer_token_and_rejects_no_room(tokenizer):
    fmt = PromptFormat("plain")
    prompt_len = len(tokenizer(fmt.prompt(QA[0]["question"]))["input_ids"])
    ex = tokenize_qa(tokenizer, fmt, QA[0]["question"], QA[0]["answer"], prompt_len + 2)
    assert ex.truncated and len(ex.input_ids) == prompt_len + 2
    assert sum(t != IGNORE_INDEX for t in ex.labels) == 2
    with pytest.raises(ValueError, match="max_length"):
        tokenize_qa(tokenizer, fmt, QA[0]["question"], QA[0]["answer"], prompt_len)


def test_chat_template_format_requires_a_template(tokenizer):
    with pytest.raises(ValueError, match="chat template"):
        PromptFormat("chat_template").prompt("q?", tokenizer)
    with pytest.raises(ValueError, match="plain, llama2, chat_template"):
        PromptFormat("alpaca")


def _module(tokenizer, seed, **kw):
    tokenizer.pad_token = tokenizer.eos_token
    return UnlearningDataModule(QA[:6], QA[6:], ["I don't know."], tokenizer, batch_size=4, seed=seed, **kw)


def _pairs(dm, epochs):
    pairs = []
    for epoch in range(epochs):
        dm.dataset.set_epoch(epoch)
        pairs.append([dm.dataset[i]["retain_index"] for i in range(len(dm.dataset))])
    return pairs


def test_pairing_is_reproducible_from_the_seed_and_covers_the_retain_set(tokenizer):
    a, b, c = _module(tokenizer, 1), _module(tokenizer, 1), _module(tokenizer, 2)
    assert _pairs(a, 3) == _pairs(b, 3) != _pairs(c, 3)
    # 6 forget items x 3 epochs walk through all 18 retain examples once each.
    assert sorted(sum(_pairs(a, 3), [])) == list(range(len(QA) - 6))
    assert _pairs(a, 1)[0] != _pairs(a, 2)[1]


def test_batches_hold_forget_retain_and_idk(tokenizer):
    dm = _module(tokenizer, 1, uses_retain=True, uses_idk=True)
    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"forget", "retain", "idk"}
    for part in batch.values():
        assert set(part) == {"input_ids", "attention_mask", "labels", "index"}
        assert part["input_ids"].shape == part["labels"].shape and part["index"].shape == (4,)
    idk_labels = batch["idk"]["labels"][0]
    assert tokenizer.decode(idk_labels[idk_labels != IGNORE_INDEX]).strip().startswith("I don't know.")
    only_forget = _module(tokenizer, 1, uses_retain=False)
    assert set(next(iter(only_forget.train_dataloader()))) == {"forget"}
