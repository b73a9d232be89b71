"""Real TOFU from a folder, and a user's own forget/retain sets (files, saved datasets, raw text)."""

import json
import logging

import pytest

from unlearn.config.loading import load_config
from unlearn.data.custom import load_custom_set, read_dataset, tokenize_text
from unlearn.data.sources import load_split, retain_split_for
from unlearn.errors import DataError
from unlearn.names import FORGET_QUALITY
from unlearn.training.fit import fit

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["trainer.max_epochs=1", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "optim.lr=1e-3",
        "optim.warmup_epochs=0.5", "data.max_length=96", "data.batch_size=8"]


@pytest.fixture(scope="module")
def tofu_model(tmp_path_factory, tofu_dir):
    """A tiny Llama with a tokenizer trained on TOFU's text, saved as a Hugging Face folder."""
    from tests.helpers import tiny_model
    from unlearn.models.loading import train_tokenizer

    texts = [f"{r['question']} {r['answer']}" for r in load_split(tofu_dir, "full")]
    tokenizer = train_tokenizer(texts, vocab_size=1000)
    folder = tmp_path_factory.mktemp("tofu_tiny")
    tiny_model(tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize("forget, rows", [("forget01", 40), ("forget05", 200), ("forget10", 400)])
def test_tofu_forget_splits_and_their_retain_splits_load_from_a_folder(tofu_dir, forget, rows):
    retain = retain_split_for(forget)
    assert len(load_split(tofu_dir, forget)) == rows
    assert len(load_split(tofu_dir, retain)) == 4000 - rows
    cfg = load_config([], ["data=tofu", f"data.path={tofu_dir}", f"data.forget_split={forget}"])
    assert (cfg.data.source, cfg.data.path, cfg.data.forget_split) == ("tofu", str(tofu_dir), forget)


@pytest.mark.slow
def test_tofu_forget01_run_trains_evaluates_and_writes_its_summary(tmp_path, tofu_dir, tofu_model):
    cfg = load_config([], [*FAST, "data=tofu", f"data.path={tofu_dir}", "data.forget_split=forget01",
                           f"model.path={tofu_model}", f"model.retain_path={tofu_model}", "loss=npo",
                           "eval.max_rows=4", "eval.max_new_tokens=4", "data.max_length=256",
                           f"run.cache_dir={tmp_path / 'cache'}",
                           f"run.output_dir={tmp_path / 'runs'}", "run.name=tofu"])
    summary = fit(cfg)
    run = tmp_path / "runs" / "tofu"
    assert summary["steps"] == 5 and summary["data"]["rows"]["forget"] == 40  # 40 rows, batches of 8
    saved = json.loads((run / "summary.json").read_text())
    assert saved["evaluation"]["unlearned"][FORGET_QUALITY] is not None
    assert (run / "summary.md").is_file() and (run / "model" / "model.safetensors").is_file()


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


QA = [{"prompt": f"What does author {i} write?", "response": f"Author {i} writes novels about river {i}."}
      for i in range(8)]
KEEP = [{"prompt": f"Where was poet {i} born?", "response": f"Poet {i} was born in town {i}."} for i in range(8)]
COLUMNS = ["data.columns.question=prompt", "data.columns.answer=response"]


def test_files_in_every_format_read_with_a_column_mapping(tmp_path):
    import datasets

    columns = {"question": "prompt", "answer": "response", "text": "text"}
    datasets.Dataset.from_list(QA).to_parquet(str(tmp_path / "f.parquet"))
    datasets.Dataset.from_list(QA).to_csv(str(tmp_path / "f.csv"), index=False)
    datasets.Dataset.from_list(QA).save_to_disk(str(tmp_path / "saved"))
    files = (_write_jsonl(tmp_path / "f.jsonl", QA), tmp_path / "f.parquet", tmp_path / "f.csv", tmp_path / "saved")
    for path in files:
        rows = load_custom_set(str(path), "forget", "qa", columns)
        assert rows[3] == {"question": QA[3]["prompt"], "answer": QA[3]["response"]}


def test_missing_column_names_the_columns_present(tmp_path):
    path = _write_jsonl(tmp_path / "f.jsonl", QA)
    with pytest.raises(DataError, match=r"data.columns.question='question'.*\['prompt', 'response'\]"):
        load_custom_set(path, "forget", "qa", {"question": "question", "answer": "response", "text": "text"})
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(DataError, match="unknown file type"):
        read_dataset(str(tmp_path / "f.txt"))


def test_raw_text_is_chunked_with_a_label_on_every_token_and_a_closing_eos():
    from tests.helpers import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    text = " ".join(f"word{i}" for i in range(60))
    chunks = tokenize_text(tokenizer, text, max_length=16)
    ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]
    assert sum(len(c.input_ids) for c in chunks) == len(ids) and len(chunks) > 2
    assert all(c.labels == c.input_ids and len(c.input_ids) <= 16 for c in chunks)
    assert chunks[-1].input_ids[-1] == tokenizer.eos_token_id


@pytest.mark.slow
def test_own_qa_files_and_raw_text_forget_set_train_without_tofu_evaluation(tmp_path, tofu_model, caplog):
    forget = _write_jsonl(tmp_path / "forget.jsonl", QA)
    import datasets

    datasets.Dataset.from_list(KEEP).to_csv(str(tmp_path / "retain.csv"), index=False)
    common = [*FAST, f"model.path={tofu_model}", "data.source=files", f"data.retain_path={tmp_path / 'retain.csv'}",
              f"run.output_dir={tmp_path / 'runs'}", f"run.cache_dir={tmp_path / 'cache'}"]
    with caplog.at_level(logging.INFO, logger="unlearn"):
        qa = fit(load_config([], [*common, f"data.forget_path={forget}", *COLUMNS, "loss=npo_rt", "run.name=qa"]))
    assert "evaluation" in caplog.text and "skipped" in caplog.text
    assert qa["evaluation"] is None and qa["steps"] == 1 and set(qa["nll_before"]) == {"forget", "retain"}
    assert (tmp_path / "runs" / "qa" / "model" / "model.safetensors").is_file()

    documents = [{"body": " ".join(f"The river {i} flows past mill {j}." for j in range(12))} for i in range(4)]
    text = _write_jsonl(tmp_path / "docs.jsonl", documents)
    run = fit(load_config([], [*common, f"data.forget_path={text}", "data.forget_format=text",
                               "data.columns.text=body", *COLUMNS, "loss=grad_diff", "run.name=text"]))
    assert run["data"]["rows"]["forget"] > len(documents)  # each document became several chunks
    assert run["nll_after"]["forget"] > run["nll_before"]["forget"]  # gradient ascent raised the text's NLL
