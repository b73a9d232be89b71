"""The built-in MUSE-format news benchmark (``unlearn.data.muse_synthetic``): determinism, disjoint splits, layout."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from unlearn.data import _muse_pools as pools
from unlearn.data.muse import LAYOUT, load_muse_eval, load_muse_split
from unlearn.data.muse_synthetic import (MuseSpec, builtin_muse_dir, finetune_sets, generate_articles,
                                         generate_muse_benchmark, tokenizer_texts)
from unlearn.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
SMALL = MuseSpec(forget_articles=5, retain1_articles=4, retain2_articles=6, holdout_articles=5,
                 questions_per_article=3, icl_examples=2, seed=7)


@pytest.fixture(scope="module")
def bench():
    return generate_muse_benchmark()


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def test_same_spec_same_benchmark_and_hash_randomisation_does_not_matter(bench):
    assert generate_muse_benchmark(MuseSpec()) == bench
    assert generate_muse_benchmark(MuseSpec(seed=1))["raw"]["forget"] != bench["raw"]["forget"]
    code = ("import hashlib, json; from unlearn.data.muse_synthetic import generate_muse_benchmark; "
            "print(hashlib.sha256(json.dumps(generate_muse_benchmark(), sort_keys=True).encode()).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONHASHSEED": "4321"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == _digest(bench)


def test_sizes_follow_the_spec_and_muse_configs(bench):
    sizes = {config: {split: len(rows) for split, rows in splits.items()} for config, splits in bench.items()}
    assert sizes == {
        "raw": {"forget": 16, "retain1": 16, "retain2": 16, "holdout": 16},
        "knowmem": {"forget_qa": 32, "retain_qa": 32, "forget_qa_icl": 3, "retain_qa_icl": 3},
        "verbmem": {"forget": 16},
        "privleak": {"forget": 16, "retain": 16, "holdout": 16},
    }
    for config, splits in bench.items():
        assert set(splits) == set(LAYOUT[config][0])
        assert all(set(row) == set(LAYOUT[config][1]) for rows in splits.values() for row in rows)


def test_articles_have_their_own_people_and_towns_and_the_splits_are_disjoint():
    articles = generate_articles(SMALL)
    assert [len(articles[r]) for r in ("forget", "retain1", "retain2", "holdout")] == [5, 4, 6, 5]
    every = [a for rows in articles.values() for a in rows]
    entities = [e for a in every for e in a["entities"]]
    assert len(entities) == len(set(entities)) == 3 * 20  # main person, second person, town: never reused
    for article in every:
        assert len(article["sentences"]) == 5 and article["text"] == " ".join(article["sentences"])
        assert all(entity in article["text"] for entity in article["entities"])
        assert len(article["facts"]) == pools.FACTS_PER_ARTICLE
        for question, answer in article["facts"]:  # every answer is in the article, every question names it
            assert re.sub(r"^(on|more than|a|an|the) ", "", answer) in article["text"]
            assert any(entity in question for entity in article["entities"])
        others = [e for a in every if a is not article for e in a["entities"]]
        assert not any(entity in article["text"] for entity in others)


def test_evaluation_sets_come_from_the_right_articles():
    bench, articles = generate_muse_benchmark(SMALL), generate_articles(SMALL)
    texts = {role: [a["text"] for a in rows] for role, rows in articles.items()}
    assert [r["text"] for r in bench["raw"]["forget"]] == texts["forget"]
    assert [r["text"] for r in bench["privleak"]["forget"]] == texts["forget"]
    assert [r["text"] for r in bench["privleak"]["retain"]] == texts["retain2"]
    assert [r["text"] for r in bench["privleak"]["holdout"]] == texts["holdout"]
    assert [f"{r['prompt']} {r['gt']}" for r in bench["verbmem"]["forget"]] == texts["forget"]
    facts = {role: {fact for a in rows for fact in a["facts"]} for role, rows in articles.items()}
    knowmem = bench["knowmem"]
    for split, role in (("forget_qa", "forget"), ("forget_qa_icl", "forget"), ("retain_qa", "retain2"),
                        ("retain_qa_icl", "retain2")):
        assert {(r["question"], r["answer"]) for r in knowmem[split]} <= facts[role]
    assert len(knowmem["forget_qa"]) == 5 * 3 and len(knowmem["retain_qa_icl"]) == 2
    # An in-context example is never a question it is shown with.
    assert not {r["question"] for r in knowmem["forget_qa_icl"]} & {r["question"] for r in knowmem["forget_qa"]}
    assert not {r["question"] for r in knowmem["retain_qa_icl"]} & {r["question"] for r in knowmem["retain_qa"]}


def test_the_cached_folder_is_muse_layout_and_no_model_trains_on_a_holdout_fact(tmp_path):
    folder = builtin_muse_dir(tmp_path, SMALL)
    assert folder.parent == tmp_path / "benchmarks" and folder.name.startswith("muse-builtin-")
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.json")) == sorted(
        f"{config}/{split}.json" for config, (splits, _) in LAYOUT.items() for split in splits)
    assert builtin_muse_dir(tmp_path, SMALL) == folder and builtin_muse_dir(tmp_path, MuseSpec(seed=8)) != folder
    bench = generate_muse_benchmark(SMALL)
    sets = load_muse_eval(folder)
    assert sets["knowmem_forget_qa"] == bench["knowmem"]["forget_qa"]
    assert load_muse_split(folder, "raw", "retain2") == bench["raw"]["retain2"]

    holdout = [e for a in generate_articles(SMALL)["holdout"] for e in a["entities"]]
    forget = [e for a in generate_articles(SMALL)["forget"] for e in a["entities"]]
    trained = {}
    for role in ("target", "retain"):
        texts, qa_sets = finetune_sets(folder, role)
        rows = [r["text"] for r in texts] + [f"{r['question']} {r['answer']}" for qa, icl in qa_sets
                                              for r in qa + icl]
        trained[role] = " ".join(rows)
        assert not any(entity in trained[role] for entity in holdout)
    assert all(entity in trained["target"] for entity in forget)
    assert not any(entity in trained["retain"] for entity in forget)  # the retain model never sees the forget set
    assert len(finetune_sets(folder, "target")[0]) == 5 + 4 + 6 and len(finetune_sets(folder, "retain")[0]) == 10
    # The tokenizer reads every article, holdout ones included (forget and holdout alike to the retain model).
    assert all(r["text"] in tokenizer_texts(folder) for r in bench["raw"]["holdout"])


@pytest.mark.parametrize("spec, match", [
    (MuseSpec(forget_articles=0), "forget_articles=0 must be an integer >= 1"),
    (MuseSpec(questions_per_article=4), "questions_per_article=4 must be at most 3"),
    (MuseSpec(icl_examples=5, forget_articles=4), "icl_examples=5 must be at most"),
    (MuseSpec(holdout_articles=500), "548 articles exceed the 200 towns"),
])
def test_impossible_specs_are_named_and_a_config_error_in_the_cache(tmp_path, spec, match):
    with pytest.raises(ValueError, match=match):
        generate_muse_benchmark(spec)
    with pytest.raises(ConfigError, match="data.muse_builtin: " + match):
        builtin_muse_dir(tmp_path, spec)
    assert not (tmp_path / "benchmarks").exists() or not list((tmp_path / "benchmarks").iterdir())
