"""Holdout authors of the built-in TOFU-format benchmark (``generate_holdout``, ``load_holdout``)."""

import hashlib
import json

import pytest

from unlearn.data import _pools
from unlearn.data.sources import builtin_benchmark_dir, load_holdout, load_split
from unlearn.data.synthetic import BenchmarkSpec, generate_benchmark, generate_holdout
from unlearn.training.finetune import benchmark_texts

# sha256 of json.dumps(generate_benchmark(spec), sort_keys=True), computed before holdout authors existed:
# adding them must not change the benchmark's splits.
SPLITS_SHA = {
    BenchmarkSpec(): "e0b7442418d5a42ccaa7c3068c569be20dc64929b0112ecdd013a5ce7b747236",
    BenchmarkSpec(num_authors=10, questions_per_author=5, num_general_facts=10):
        "23ce58075dbbdb1a2af504e18a2010c5a25e7834384a1f2ec37c5332d6f89149",
    BenchmarkSpec(num_authors=7, questions_per_author=3, forget_percents=(10, 50, 99), seed=3):
        "74f8efcb2cf6bbc82301ccdf955bae9a97ca0fe5bba02191dcd4da2125c41568",
}


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _names_in(rows, names):
    return {name for row in rows for name in names if name in row["question"] or name in row["answer"]}


@pytest.mark.parametrize("spec", list(SPLITS_SHA))
def test_existing_splits_are_byte_identical_to_the_first_release(spec):
    assert _sha(generate_benchmark(spec)) == SPLITS_SHA[spec]


def test_each_forget_split_has_a_holdout_split_of_as_many_unseen_authors():
    spec = BenchmarkSpec(num_authors=20, questions_per_author=4, forget_percents=(5, 10, 25))
    splits, holdout = generate_benchmark(spec), generate_holdout(spec)
    assert sorted(holdout) == ["holdout05", "holdout10", "holdout25"]
    for percent in spec.forget_percents:
        rows = holdout[f"holdout{percent:02d}"]
        assert len(rows) == len(splits[f"forget{percent:02d}"]) and all(set(r) == {"question", "answer"} for r in rows)
    # Nested like the forget splits: the smaller ones are the last authors of the largest.
    assert holdout["holdout25"][-len(holdout["holdout05"]):] == holdout["holdout05"]
    # No holdout question is a benchmark question, and no holdout author is named in any trained row.
    trained = splits["full"] + splits["real_authors_perturbed"] + splits["world_facts_perturbed"]
    assert not {r["question"] for r in holdout["holdout25"]} & {r["question"] for r in trained}
    names = {f"{first} {last}" for first in _pools.MALE_FIRST + _pools.FEMALE_FIRST for last in _pools.LAST}
    hidden = _names_in(holdout["holdout25"], names)
    assert len(hidden) == 5 and not hidden & _names_in(trained, names)  # 25% of 20 authors
    assert generate_holdout(spec) == holdout  # deterministic
    assert generate_holdout(BenchmarkSpec(num_authors=20, questions_per_author=4, forget_percents=(5, 10, 25),
                                          seed=1)) != holdout


def test_too_little_room_in_the_pools_is_a_value_error_and_the_benchmark_still_builds(tmp_path, caplog):
    spec = BenchmarkSpec(num_authors=310, questions_per_author=1, num_general_facts=5, forget_percents=(50,))
    with pytest.raises(ValueError, match="room for 2 holdout authors"):
        generate_holdout(spec)
    folder = builtin_benchmark_dir(tmp_path, spec)
    assert (folder / "full.json").is_file() and not list(folder.glob("holdout*"))
    assert "no holdout splits" in caplog.text
    assert load_holdout(folder, "forget50") is None


def test_the_cached_folder_holds_the_holdout_files_and_the_tokenizer_learns_their_text(tmp_path):
    folder = builtin_benchmark_dir(tmp_path, BenchmarkSpec())
    assert folder.name == "builtin-ecf23d6f70c4"  # the first release's key: caches stay valid
    assert sorted(p.name for p in folder.glob("holdout*")) == ["holdout01.json", "holdout05.json", "holdout10.json"]
    texts = set(benchmark_texts(folder))
    holdout = load_split(folder, "holdout10")
    assert all(r["question"] in texts and r["answer"] in texts for r in holdout)  # else MIA separates by tokenizer
    assert load_holdout(folder, "forget05") == generate_holdout()["holdout05"]
    assert load_holdout(str(folder), "forget10") == load_split(folder, "holdout10")


def test_a_folder_cached_before_holdout_gains_it_and_keeps_its_files(tmp_path):
    spec = BenchmarkSpec(num_authors=10, questions_per_author=3, num_general_facts=5)
    folder = builtin_benchmark_dir(tmp_path, spec)
    for path in folder.glob("holdout*"):
        path.unlink()  # as an earlier release left it
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert builtin_benchmark_dir(tmp_path, spec) == folder
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert {name: after[name] for name in before} == before
    assert sorted(set(after) - set(before)) == ["holdout01.json", "holdout05.json", "holdout10.json"]


def test_load_holdout_is_none_where_there_is_none(tmp_path, tofu_dir):
    assert load_holdout(None, "forget10") is None
    assert load_holdout(tofu_dir, "forget10") is None  # the local TOFU copy has no holdout files
    folder = builtin_benchmark_dir(tmp_path, BenchmarkSpec(num_authors=10, questions_per_author=2,
                                                           num_general_facts=5))
    assert load_holdout(folder, "my_forget_set") is None  # not a forgetXX split
    assert load_holdout(tmp_path / "no" / "such" / "folder", "forget10") is None


def test_a_broken_holdout_file_is_a_data_error(tmp_path):
    from unlearn.errors import DataError

    folder = builtin_benchmark_dir(tmp_path, BenchmarkSpec(num_authors=10, questions_per_author=2,
                                                           num_general_facts=5))
    (folder / "holdout10.json").write_text('{"question": "Who?"}\n')
    with pytest.raises(DataError, match=r"holdout10.json, row 0: missing field\(s\) \['answer'\]"):
        load_holdout(folder, "forget10")
