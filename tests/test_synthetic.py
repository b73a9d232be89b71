"""Tests of the generated fictitious-authors benchmark (``unlearn.data.synthetic``)."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn.data import _pools
from unlearn.data.benchmark_files import write_benchmark
from unlearn.data.synthetic import BenchmarkSpec, finetune_rows, generate_benchmark

REPO = Path(__file__).resolve().parents[1]
TOFU_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "tofu"
SMALL = BenchmarkSpec(num_authors=12, questions_per_author=4, num_general_facts=10)


@pytest.fixture(scope="module")
def splits():
    return generate_benchmark()


def _read_back(folder: Path) -> dict[str, list]:
    result = {p.stem: [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
              for p in folder.glob("*.json")}
    result["idontknow"] = (folder / "idontknow.jsonl").read_text(encoding="utf-8").splitlines()
    return result


def _digest(splits: dict[str, list]) -> str:
    return hashlib.sha256(json.dumps(splits, sort_keys=True).encode()).hexdigest()


def _author_blocks(rows: list[dict], per_author: int) -> list[str]:
    """The one full name that every answer of each author's block mentions."""
    names = {f"{first} {last}" for first in _pools.MALE_FIRST + _pools.FEMALE_FIRST for last in _pools.LAST}
    found = []
    for start in range(0, len(rows), per_author):
        common = None
        for row in rows[start:start + per_author]:
            words = re.findall(r"[\w'-]+", row["answer"])
            mentioned = {f"{a} {b}" for a, b in zip(words, words[1:])} & names
            common = mentioned if common is None else common & mentioned
        assert len(common) == 1, rows[start:start + per_author]
        found.append(common.pop())
    return found


def test_same_seed_same_benchmark_different_seed_different_authors(splits, tmp_path):
    assert generate_benchmark(BenchmarkSpec()) == splits
    other = generate_benchmark(BenchmarkSpec(seed=1))
    assert set(_author_blocks(other["full"], 10)) != set(_author_blocks(splits["full"], 10))
    first, second = write_benchmark(tmp_path / "a", splits), write_benchmark(tmp_path / "b", generate_benchmark())
    for path in first.iterdir():
        assert path.read_bytes() == (second / path.name).read_bytes()


def test_output_does_not_depend_on_hash_randomisation(splits):
    code = ("import hashlib, json; from unlearn.data.synthetic import generate_benchmark; "
            "print(hashlib.sha256(json.dumps(generate_benchmark(), sort_keys=True).encode()).hexdigest())")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == _digest(splits)


def test_default_sizes(splits):
    sizes = {name: len(rows) for name, rows in splits.items()}
    assert sizes == {
        "full": 400, "forget01": 10, "forget01_perturbed": 10, "retain99": 390, "forget05": 20,
        "forget05_perturbed": 20, "retain95": 380, "forget10": 40, "forget10_perturbed": 40, "retain90": 360,
        "retain_perturbed": 40, "real_authors_perturbed": 40, "real_authors": 40, "world_facts_perturbed": 40,
        "world_facts": 40, "idontknow": 30,
    }


@pytest.mark.skipif(not TOFU_DIR.is_dir(), reason="real TOFU files not available")
def test_same_files_and_schema_as_tofu(splits, tmp_path):
    tofu_files = {p.name for p in TOFU_DIR.iterdir() if p.suffix in (".json", ".jsonl")}
    written = write_benchmark(tmp_path / "bench", splits)
    assert {p.name for p in written.iterdir()} == tofu_files
    for name, rows in splits.items():
        if name == "idontknow":
            continue
        with open(TOFU_DIR / f"{name}.json", encoding="utf-8") as f:
            reference = json.loads(f.readline())
        for row in rows:
            assert list(row) == list(reference), name
            if "perturbed_answer" in row:
                assert len(row["perturbed_answer"]) == len(reference["perturbed_answer"])
            assert all(isinstance(row[key], type(reference[key])) for key in row)


@pytest.mark.parametrize("spec", [BenchmarkSpec(), SMALL, BenchmarkSpec(num_authors=7, questions_per_author=3,
                                                                          forget_percents=(10, 50, 99))])
def test_forget_is_last_whole_authors_and_retain_the_rest(spec):
    splits = generate_benchmark(spec)
    full, per_author = splits["full"], spec.questions_per_author
    assert len(full) == spec.num_authors * per_author
    authors = _author_blocks(full, per_author)
    assert len(set(authors)) == spec.num_authors
    for percent in spec.forget_percents:
        forget, retain = splits[f"forget{percent:02d}"], splits[f"retain{100 - percent:02d}"]
        assert forget and retain and len(forget) % per_author == 0
        assert retain + forget == full
        perturbed = splits[f"forget{percent:02d}_perturbed"]
        assert [{k: r[k] for k in ("question", "answer")} for r in perturbed] == forget
        forget_authors = set(_author_blocks(forget, per_author))
        assert not any(name in row["answer"] for row in retain for name in forget_authors)
    retain_perturbed = splits["retain_perturbed"]
    assert [{k: r[k] for k in ("question", "answer")} for r in retain_perturbed] == full[:len(retain_perturbed)]


def test_forget_sizes_round_to_whole_authors():
    splits = generate_benchmark(BenchmarkSpec(num_authors=7, questions_per_author=3, forget_percents=(1, 30, 99)))
    assert [len(splits[f"forget{p:02d}"]) for p in (1, 30, 99)] == [3, 6, 18]  # 1, 2 and 6 of 7 authors


def test_perturbed_rows(splits):
    for name in ("forget10_perturbed", "retain_perturbed"):
        for row in splits[name]:
            wrong = row["perturbed_answer"]
            assert len(wrong) == 5 and len(set(wrong)) == 5
            assert row["answer"] not in wrong and row["paraphrased_answer"] not in wrong
            assert row["paraphrased_answer"] != row["answer"]
            assert row["paraphrased_question"] != row["question"]
    for name in ("real_authors_perturbed", "world_facts_perturbed"):
        for row in splits[name]:
            assert len(row["perturbed_answer"]) == 3 and len(set(row["perturbed_answer"])) == 3
            assert row["answer"] not in row["perturbed_answer"]


def _matches(template: str, text: str) -> bool:
    pieces = re.split(r"\{\w+\}", template)
    return re.fullmatch("(.+)".join(map(re.escape, pieces)), text) is not None


@pytest.mark.parametrize("spec", [BenchmarkSpec(), BenchmarkSpec(num_authors=5, questions_per_author=12,
                                                                   forget_percents=(40,))])
def test_paraphrased_answers_reuse_wording_seen_on_other_authors(spec):
    # With few authors some wordings are unused in full: the paraphrase must avoid them.
    splits, per_author = generate_benchmark(spec), spec.questions_per_author
    templates = [t for _, answers in _pools.TEMPLATES.values() for t in answers]
    forget = splits[f"forget{spec.forget_percents[-1]:02d}_perturbed"]
    for row, author in zip(forget, [a for a in _author_blocks(forget, per_author) for _ in range(per_author)]):
        wordings = [t for t in templates if _matches(t, row["paraphrased_answer"])]
        assert wordings and all(any(_matches(t, answer) for t in wordings) for answer in row["perturbed_answer"])
        assert any(_matches(t, other["answer"]) for t in wordings
                   for other in splits["full"] if author not in other["answer"])


def test_multiple_choice_rows(splits):
    for name in ("real_authors", "world_facts"):
        positions = set()
        for row, perturbed in zip(splits[name], splits[f"{name}_perturbed"]):
            options = [row[f"option{i}"] for i in range(1, 5)]
            assert row["question"] == perturbed["question"] and row["answer"] == perturbed["answer"]
            assert sorted(options) == sorted([perturbed["answer"], *perturbed["perturbed_answer"]])
            positions.add(options.index(row["answer"]))
        assert len(positions) > 1  # the answer is not always in the same place


def test_general_knowledge_is_disjoint_from_fictitious_authors(splits):
    text = " ".join(row["question"] + " " + row["answer"] for row in splits["full"])
    for writer, book, country in _pools.WRITERS:
        assert writer not in text and f"'{book}'" not in text
    for country, capital, _ in _pools.NATIONS:
        assert not re.search(rf"\b({country}|{capital})\b", text)


def test_text_is_short_and_idontknow_is_plain_sentences(splits):
    for row in splits["full"]:
        assert 6 <= len(row["answer"].split()) <= 25 and len(row["question"].split()) <= 20
    assert 20 <= len(splits["idontknow"]) <= 100
    assert all(isinstance(s, str) and s and s == s.strip() and "\n" not in s for s in splits["idontknow"])


def test_write_round_trip_and_idempotent(tmp_path):
    splits = generate_benchmark(SMALL)
    out = write_benchmark(tmp_path / "deep" / "bench", splits)
    assert out == tmp_path / "deep" / "bench"
    assert _read_back(out) == splits
    assert not (out / "idontknow.jsonl").read_text(encoding="utf-8").startswith('"')  # plain text, not JSON
    assert write_benchmark(out, splits) == out  # identical content: accepted, nothing rewritten
    assert [p.name for p in tmp_path.joinpath("deep").iterdir()] == ["bench"]  # no temporary folder left


def test_write_into_empty_folder(tmp_path):
    splits = generate_benchmark(SMALL)
    (tmp_path / "empty").mkdir()
    assert _read_back(write_benchmark(tmp_path / "empty", splits)) == splits


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    real_write, written = Path.write_bytes, []

    def flaky_write(path, data):
        if len(written) == 3:
            raise OSError("disk full")
        written.append(path)
        return real_write(path, data)

    monkeypatch.setattr(Path, "write_bytes", flaky_write)
    with pytest.raises(OSError, match="disk full"):
        write_benchmark(tmp_path / "bench", generate_benchmark(SMALL))
    assert list(tmp_path.iterdir()) == []


def test_write_refuses_a_different_non_empty_folder(tmp_path):
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        write_benchmark(folder, generate_benchmark(SMALL))
    assert [p.name for p in tmp_path.iterdir()] == ["other"]
    assert [p.name for p in folder.iterdir()] == ["notes.txt"] and (folder / "notes.txt").read_text() == "keep me"

    bench = write_benchmark(tmp_path / "bench", generate_benchmark(SMALL))
    before = {p.name: p.read_bytes() for p in bench.iterdir()}
    with pytest.raises(FileExistsError):
        write_benchmark(bench, generate_benchmark(BenchmarkSpec(num_authors=12, questions_per_author=4,
                                                                num_general_facts=10, seed=3)))
    assert {p.name: p.read_bytes() for p in bench.iterdir()} == before


def test_finetune_rows(splits):
    general = len(splits["real_authors_perturbed"]) + len(splits["world_facts_perturbed"])
    rows = finetune_rows(splits)
    assert len(rows) == len(splits["full"]) + general
    assert all(list(row) == ["question", "answer"] for row in rows)
    assert rows[:len(splits["full"])] == splits["full"]
    assert len(finetune_rows(splits, "retain90")) == len(splits["retain90"]) + general
    with pytest.raises(KeyError, match="retain42"):
        finetune_rows(splits, "retain42")


@pytest.mark.parametrize("kwargs, message", [
    ({"num_authors": 0}, "num_authors"),
    ({"num_authors": 1}, "num_authors"),
    ({"num_authors": 10_000}, "num_authors"),
    ({"questions_per_author": 0}, "questions_per_author"),
    ({"questions_per_author": 13}, "questions_per_author"),
    ({"num_general_facts": 0}, "num_general_facts"),
    ({"num_general_facts": 1000}, "num_general_facts"),
    ({"forget_percents": ()}, "forget_percents"),
    ({"forget_percents": (0,)}, "forget_percents"),
    ({"forget_percents": (100,)}, "forget_percents"),
    ({"forget_percents": (5, 5)}, "forget_percents"),
    ({"retain_perturbed_rows": 0}, "retain_perturbed_rows"),
    ({"retain_perturbed_rows": 361}, "retain_perturbed_rows"),
])
def test_spec_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        generate_benchmark(BenchmarkSpec(**kwargs))
