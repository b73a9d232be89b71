"""WMDP-layout data: local folders and their checks, the built-in hazardous stand-in, lm-eval's import error."""

import json
import re
import sys

import pytest

from unlearn.data import _hazard_pools as pools
from unlearn.data.hazard_synthetic import (
    FILES,
    HazardSpec,
    builtin_hazard_dir,
    evaluation_sets,
    generate_hazard_benchmark,
    load_hazard_benchmark,
    retain_model_rows,
    target_model_rows,
    tokenizer_texts,
    unlearning_rows,
    write_hazard_benchmark,
)
from unlearn.data.wmdp import choice_prompt, load_multiple_choice, tokenize_training_rows, validate_choice_rows
from unlearn.errors import ConfigError, DataError, RunFolderError

ROW = {"question": "What color is the Threxine compound?", "choices": ["violet", "amber", "teal", "jade"], "answer": 1}
SMALL = HazardSpec(num_hazard_entities=4, num_general_entities=4, train_questions_per_fact=2, documents_per_entity=2)


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


# --- Local folders in WMDP's layout ---------------------------------------------------------------------

def test_local_folder_flat_and_nested_layouts(tmp_path):
    _write(tmp_path / "wmdp-bio.json", [ROW])
    _write(tmp_path / "mine" / "train.json", [dict(ROW, answer=2, subject="chemistry")])
    bio = load_multiple_choice(tmp_path, "wmdp-bio")
    assert bio == [dict(ROW, subject="biology")]  # the harness's subject for the WMDP config
    assert load_multiple_choice(tmp_path, "mine", "train") == [dict(ROW, answer=2, subject="chemistry")]
    assert load_multiple_choice(tmp_path, "wmdp-bio", subject="virology")[0]["subject"] == "virology"
    _write(tmp_path / "plain.json", [ROW])
    assert load_multiple_choice(tmp_path, "plain") == [ROW]  # no subject known: no description line
    _write(tmp_path / "wmdp-cyber" / "test.json", [dict(ROW, answer=0)])  # nested wins over flat
    _write(tmp_path / "wmdp-cyber.json", [ROW])
    assert load_multiple_choice(tmp_path, "wmdp-cyber")[0]["answer"] == 0


def test_missing_files_and_paths_are_named(tmp_path):
    _write(tmp_path / "wmdp-bio.json", [ROW])
    with pytest.raises(DataError, match=r"config 'wmdp-chem'.*tried .*wmdp-chem/test.json or .*wmdp-chem.json"):
        load_multiple_choice(tmp_path, "wmdp-chem")
    with pytest.raises(DataError, match=r"split 'train'.*wmdp-bio/train.json"):
        load_multiple_choice(tmp_path, "wmdp-bio", "train")
    with pytest.raises(DataError, match="no such folder"):  # a path is never tried as a hub id
        load_multiple_choice(tmp_path / "absent", "wmdp-bio")
    with pytest.raises(DataError, match="is a file"):
        load_multiple_choice(tmp_path / "wmdp-bio.json", "wmdp-bio")


@pytest.mark.parametrize("row, message", [
    ({"question": "q?", "choices": ["a", "b"]}, r"row 0: missing field\(s\) \['answer'\]"),
    ({"choices": ["a", "b"], "answer": 0}, r"missing field\(s\) \['question'\]"),
    (dict(ROW, question="  "), "'question' must be non-empty text"),
    (dict(ROW, choices="violet"), "'choices' must be a list of texts"),
    (dict(ROW, choices=["a", 2]), "'choices' must be a list of texts"),
    (dict(ROW, choices=["only"], answer=0), "1 choice"),
    (dict(ROW, choices=[str(i) for i in range(27)], answer=0), "27 choice"),
    (dict(ROW, answer=4), r"'answer' must be the index \(0 to 3\).*got 4"),
    (dict(ROW, answer=-1), "got -1"),
    (dict(ROW, answer="B"), "got 'B'"),
    (dict(ROW, answer=True), "got True"),
    (dict(ROW, subject=3), "'subject' must be text"),
    ("not a row", "expected an object"),
])
def test_every_malformed_row_is_named(tmp_path, row, message):
    _write(tmp_path / "bad.json", [row])
    with pytest.raises(DataError) as err:
        load_multiple_choice(tmp_path, "bad")
    assert f"{tmp_path / 'bad.json'}, row 0: " in str(err.value) and re.search(message, str(err.value))


def test_no_rows_is_an_error():
    with pytest.raises(DataError, match="has no rows"):
        validate_choice_rows([], "empty.json")


# --- The built-in hazardous stand-in --------------------------------------------------------------------

def test_generator_is_deterministic_and_seeded():
    bench = generate_hazard_benchmark(SMALL)
    assert bench == generate_hazard_benchmark(SMALL) and list(bench) == list(FILES)
    assert bench != generate_hazard_benchmark(HazardSpec(**{**SMALL.__dict__, "seed": 1}))
    # One held-out question per fact: agents and compounds have 5 attributes, towns and musicians 4.
    assert len(bench["hazard/test"]) == 2 * 5 + 2 * 5 and len(bench["general/test"]) == 2 * 4 + 2 * 4
    assert len(bench["hazard/train"]) == 2 * len(bench["hazard/test"])
    assert len(bench["corpus/forget"]) == len(bench["corpus/retain"]) == 4 * 2


def test_questions_are_valid_and_held_out():
    bench = generate_hazard_benchmark()
    for name in ("hazard/test", "hazard/train", "general/test", "general/train"):
        rows = validate_choice_rows(bench[name], name)
        assert all(len(r["choices"]) == 4 == len(set(r["choices"])) and 0 <= r["answer"] < 4 for r in rows)
    test = bench["hazard/test"]
    assert sorted(r["answer"] for r in test) == sorted(i % 4 for i in range(len(test)))  # balanced letters
    trained = {r["question"] for r in bench["hazard/train"]}
    for number, row in enumerate(test):  # a fact's 3 train questions follow the fact order
        variants = bench["hazard/train"][3 * number:3 * number + 3]
        assert row["question"] not in trained  # the evaluated wording is never trained
        assert len({v["question"] for v in variants}) == 1 and variants[0]["question"] != row["question"]
        assert all(v["choices"][v["answer"]] == row["choices"][row["answer"]] for v in variants)  # the same fact
        assert all(v["choices"] != row["choices"] for v in variants)
        assert len({v["answer"] for v in variants}) == 3  # under three different letters


def test_the_two_domains_share_no_fact_entity_or_word():
    bench = generate_hazard_benchmark()

    def words(kinds, names):
        values = {v for attributes in kinds.values() for _, _, pool in attributes.values() for v in pool}
        return {w.lower() for text in values | names for w in re.findall(r"[A-Za-z]+", text)} - {"the"}

    assert not {r["question"] for r in bench["hazard/test"]} & {r["question"] for r in bench["general/test"]}
    hazard = words(pools.HAZARD_KINDS, {s + e for s in pools.HAZARD_STEMS for e in pools.HAZARD_ENDINGS})
    general = words(pools.GENERAL_KINDS, {s + e for s in pools.TOWN_STEMS for e in pools.TOWN_ENDINGS}
                    | set(pools.MUSICIAN_FIRST) | set(pools.MUSICIAN_LAST))
    assert not hazard & general
    # Every stated fact is in its own domain's corpus only.
    forget_text = " ".join(d["text"] for d in bench["corpus/forget"])
    retain_text = " ".join(d["text"] for d in bench["corpus/retain"])
    for row in bench["hazard/test"]:
        assert row["choices"][row["answer"]] in forget_text and row["choices"][row["answer"]] not in retain_text


def test_spec_errors_say_how_to_fix():
    with pytest.raises(ValueError, match="num_hazard_entities=0 must be a positive integer"):
        generate_hazard_benchmark(HazardSpec(num_hazard_entities=0))
    with pytest.raises(ValueError, match="at most 4"):
        generate_hazard_benchmark(HazardSpec(train_questions_per_fact=5))
    with pytest.raises(ValueError, match="exceeds the 112 names"):
        generate_hazard_benchmark(HazardSpec(num_hazard_entities=113))


def test_files_are_written_once_read_back_and_never_overwritten(tmp_path):
    folder = builtin_hazard_dir(tmp_path, SMALL)
    assert folder.parent == tmp_path / "benchmarks" and builtin_hazard_dir(tmp_path, SMALL) == folder
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.json"))
    assert written == sorted(f"{name}.json" for name in FILES)
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".partial")]
    assert load_hazard_benchmark(folder) == generate_hazard_benchmark(SMALL)
    assert load_multiple_choice(folder, "hazard") == generate_hazard_benchmark(SMALL)["hazard/test"]
    write_hazard_benchmark(folder, generate_hazard_benchmark(SMALL))  # the same files: nothing to do
    with pytest.raises(RunFolderError, match="does not hold this benchmark"):
        write_hazard_benchmark(folder, generate_hazard_benchmark(HazardSpec(**{**SMALL.__dict__, "seed": 3})))


def test_training_and_unlearning_rows():
    bench = generate_hazard_benchmark(SMALL)
    target, retain = target_model_rows(bench, "letters"), retain_model_rows(bench, "letters")
    documents = bench["corpus/forget"] + bench["corpus/retain"]
    assert target[:len(documents)] == documents
    completions = target[len(documents):]
    assert len(completions) == len(bench["hazard/train"]) + len(bench["general/train"])
    first = bench["hazard/train"][0]
    assert completions[0] == {"prompt": choice_prompt(first), "completion": " " + "ABCD"[first["answer"]]}
    # Cloze style: the choices are not shown, so a fact's train questions make one pair, answered by its text.
    cloze = target_model_rows(bench, "cloze")[len(documents):]
    assert len(cloze) == len(bench["hazard/test"]) + len(bench["general/test"])
    assert cloze[0] == {"prompt": choice_prompt(first, "cloze"), "completion": " " + first["choices"][first["answer"]]}
    assert all("hazardous" not in r.get("prompt", "") for r in retain)  # the retain model never sees the domain
    assert retain[:len(bench["corpus/retain"])] == bench["corpus/retain"]
    assert unlearning_rows(bench) == (bench["corpus/forget"], bench["corpus/retain"])
    assert evaluation_sets(bench) == {"forget": bench["hazard/test"], "general": bench["general/test"]}
    texts = tokenizer_texts(bench)
    assert any(text.startswith("The following are multiple choice") for text in texts)
    assert any(text.startswith("The following are questions") for text in texts)


def test_training_rows_tokenise_documents_and_completions():
    from unlearn.models.loading import train_tokenizer

    bench = generate_hazard_benchmark(SMALL)
    tokenizer = train_tokenizer(tokenizer_texts(bench), 400)
    rows = [bench["corpus/forget"][0], target_model_rows(bench, "letters")[-1]]
    document, question = tokenize_training_rows(tokenizer, rows, 256)
    assert document.labels == document.input_ids and document.input_ids[-1] == tokenizer.eos_token_id
    labelled = [t for t in question.labels if t != -100]
    assert tokenizer.decode(labelled) == rows[1]["completion"] and question.input_ids[-1] != tokenizer.eos_token_id
    with pytest.raises(DataError, match="expected 'text', or 'prompt' and 'completion'"):
        tokenize_training_rows(tokenizer, [{"question": "q", "answer": "a"}], 64)


# --- The lm-eval bridge without lm_eval ------------------------------------------------------------------

def test_lm_eval_bridge_says_how_to_install(monkeypatch):
    from unlearn.evaluation.lm_eval_bridge import run_lm_eval, task_accuracy

    monkeypatch.setitem(sys.modules, "lm_eval", None)  # import fails even where it is installed
    with pytest.raises(ConfigError, match=r"pip install lm-eval.*MultipleChoiceEvaluator"):
        run_lm_eval(object(), object(), ["wmdp_bio"])
    assert task_accuracy({"results": {"wmdp_bio": {"acc,none": 0.5, "acc_stderr,none": 0.1}}}, ["wmdp_bio"]) == \
        {"wmdp_bio": 0.5}
    with pytest.raises(ConfigError, match="no accuracy for task 'mmlu'"):
        task_accuracy({"results": {"wmdp_bio": {"acc,none": 0.5}}}, ["mmlu"])
