"""A MUSE-format news benchmark of invented events, generated offline (``data.source=muse_builtin``).

MUSE-News (Shi et al., 2024) asks a model trained on news articles to forget some of them. This
builds a benchmark of the same shape from a seed, small enough for the built-in tiny Llama: short
articles about invented people, towns and events (``_muse_pools.py``), each five sentences holding
four facts a question can ask about. Every article has its own main person, second person and town,
so no fact of one article appears in another.

The articles split as MUSE's ``raw`` config does: ``forget``; ``retain1`` (the retain set unlearning
uses); ``retain2`` (trained on, but only evaluated: its questions measure utility, as MUSE's
``retain_qa`` do); ``holdout`` (no model is trained on them). The evaluation sets follow MUSE's
configs (:mod:`unlearn.data.muse`): ``knowmem`` questions about forget and retain2 articles, with
in-context examples about other facts of those articles; ``verbmem``, the first sentence of each
forget article as the prompt and the rest as ``gt``; ``privleak``, whole forget, retain2 and holdout
articles. Sizes are MUSE's shape scaled down (MUSE-News: 100 items per evaluation set, 10 in-context
examples; here a few dozen and 3, which also keeps the KnowMem prompt short).

Differences from MUSE, for a model with no pretraining: the built-in target and retain models
(:func:`unlearn.training.assets.finetune_muse_builtin`) also learn the KnowMem questions of their
articles, in MUSE's KnowMem prompt format, since a tiny model that only read the articles could not
answer questions at all; MUSE's Llama-2 target learned only the raw text.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from unlearn.data import _muse_pools as pools
from unlearn.errors import ConfigError
from unlearn.identity import short_hash, stable_json

log = logging.getLogger(__name__)
GENERATOR_VERSION = 1  # in the cache keys of the benchmark and its models: a changed generator is a new folder
ROLES = ("forget", "retain1", "retain2", "holdout")


@dataclass(frozen=True)
class MuseSpec:
    """Sizes and seed of a generated MUSE-format benchmark.

    Attributes:
        forget_articles, retain1_articles, retain2_articles, holdout_articles: Articles of each raw split.
        questions_per_article: KnowMem questions about each forget and retain2 article (at most 3: a
            fourth fact of some articles gives the in-context examples).
        icl_examples: In-context question/answer pairs of each KnowMem prompt (MUSE: 10).
        seed: Seed of every random choice; the same spec always gives the same benchmark.
    """

    forget_articles: int = 16
    retain1_articles: int = 16
    retain2_articles: int = 16
    holdout_articles: int = 16
    questions_per_article: int = 2
    icl_examples: int = 3
    seed: int = 0


def _validate(spec: MuseSpec) -> None:
    """Raises ValueError saying which size is wrong and how to fix it."""
    for name in ("forget_articles", "retain1_articles", "retain2_articles", "holdout_articles",
                 "questions_per_article", "icl_examples"):
        value = getattr(spec, name)
        low = 0 if name == "icl_examples" else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}={value!r} must be an integer >= {low}.")
    if spec.questions_per_article > pools.FACTS_PER_ARTICLE - 1:
        raise ValueError(f"questions_per_article={spec.questions_per_article} must be at most "
                         f"{pools.FACTS_PER_ARTICLE - 1}: an article has {pools.FACTS_PER_ARTICLE} facts and one "
                         "is kept for the in-context examples.")
    if spec.icl_examples > min(spec.forget_articles, spec.retain2_articles):
        raise ValueError(f"icl_examples={spec.icl_examples} must be at most forget_articles and retain2_articles "
                         "(one in-context example per article); lower it or add articles.")
    total = sum(getattr(spec, f"{role}_articles") for role in ROLES)
    names = (len(pools.MALE_FIRST) + len(pools.FEMALE_FIRST)) * len(pools.LAST)
    if total > len(pools.TOWNS) or 2 * total > names:
        raise ValueError(f"{total} articles exceed the {len(pools.TOWNS)} towns (or {names // 2} name pairs) the "
                         "pools give one article each; use fewer articles or extend _muse_pools.py.")


def _article(rng: random.Random, person: tuple[str, str], other: str, town: str) -> dict:
    """One article: its text, its sentences and its four facts as (question, answer)."""
    kind = rng.choice(sorted(pools.KINDS))
    sentences, facts, items, (low, high) = pools.KINDS[kind]
    gender, name = person
    slots = {"person": name, "other": other, "town": town, "day": str(rng.randint(1, 28)),
             "month": rng.choice(pools.MONTHS), "year": rng.choice(pools.YEARS),
             "number": str(rng.randint(low, high)), "item": rng.choice(items), "job": rng.choice(pools.JOBS),
             "He": "He" if gender == "male" else "She", "he": "he" if gender == "male" else "she",
             "his": "his" if gender == "male" else "her"}
    lines = [sentence.format(**slots) for sentence in sentences]
    return {"kind": kind, "sentences": lines, "text": " ".join(lines),
            "facts": [(q.format(**slots), a.format(**slots)) for q, a in facts],
            "entities": (name, other, town), "fact_order": rng.sample(range(len(facts)), len(facts))}


def generate_articles(spec: MuseSpec = MuseSpec()) -> dict[str, list[dict]]:
    """The articles of each raw split (``forget``, ``retain1``, ``retain2``, ``holdout``), with their facts.

    Raises:
        ValueError: ``spec`` asks for something the pools cannot give; the message says how to fix it.
    """
    _validate(spec)
    rng = random.Random(f"{spec.seed}:muse-news")
    counts = [getattr(spec, f"{role}_articles") for role in ROLES]
    people = [(gender, f"{first} {last}")
              for gender, firsts in (("male", pools.MALE_FIRST), ("female", pools.FEMALE_FIRST))
              for first in firsts for last in pools.LAST]
    chosen = rng.sample(people, 2 * sum(counts))  # never reused: an article's people are its own
    towns = rng.sample(pools.TOWNS, sum(counts))
    articles = [_article(rng, chosen[2 * i], chosen[2 * i + 1][1], towns[i]) for i in range(sum(counts))]
    splits, start = {}, 0
    for role, count in zip(ROLES, counts):
        splits[role], start = articles[start:start + count], start + count
    return splits


def _knowmem(articles: list[dict], spec: MuseSpec) -> tuple[list[dict], list[dict]]:
    """Questions about ``articles`` and in-context examples about other facts of the first of them."""
    qa = [{"question": article["facts"][i][0], "answer": article["facts"][i][1]}
          for article in articles for i in article["fact_order"][:spec.questions_per_article]]
    icl = [{"question": article["facts"][article["fact_order"][-1]][0],
            "answer": article["facts"][article["fact_order"][-1]][1]} for article in articles[:spec.icl_examples]]
    return qa, icl


def generate_muse_benchmark(spec: MuseSpec = MuseSpec()) -> dict[str, dict[str, list[dict]]]:
    """Every config and split of the benchmark, in MUSE's layout: ``{config: {split: rows}}``.

    Raises:
        ValueError: ``spec`` asks for something the pools cannot give.
    """
    articles = generate_articles(spec)
    forget_qa, forget_icl = _knowmem(articles["forget"], spec)
    retain_qa, retain_icl = _knowmem(articles["retain2"], spec)
    return {
        "raw": {role: [{"text": a["text"]} for a in rows] for role, rows in articles.items()},
        "knowmem": {"forget_qa": forget_qa, "retain_qa": retain_qa,
                    "forget_qa_icl": forget_icl, "retain_qa_icl": retain_icl},
        "verbmem": {"forget": [{"prompt": a["sentences"][0], "gt": " ".join(a["sentences"][1:])}
                               for a in articles["forget"]]},
        "privleak": {"forget": [{"text": a["text"]} for a in articles["forget"]],
                     "retain": [{"text": a["text"]} for a in articles["retain2"]],
                     "holdout": [{"text": a["text"]} for a in articles["holdout"]]},
    }


def builtin_muse_dir(cache_dir: str | Path, spec: MuseSpec) -> Path:
    """The cached folder of the generated benchmark for ``spec`` (MUSE's local layout), written on first use.

    Raises:
        ConfigError: ``spec`` (``data.muse_builtin.*``) asks for something the pools cannot give.
    """
    from unlearn.data.benchmark_files import write_muse_benchmark

    key = short_hash(stable_json({"spec": asdict(spec), "version": GENERATOR_VERSION}), length=12)
    folder = Path(cache_dir).expanduser() / "benchmarks" / f"muse-builtin-{key}"
    if not folder.is_dir():  # written whole or not at all (atomically): a folder that exists is complete
        try:
            sets = generate_muse_benchmark(spec)
        except ValueError as err:
            raise ConfigError(f"data.muse_builtin: {err}") from err
        write_muse_benchmark(folder, sets)
    return folder


# The sets each built-in model learns: raw splits, and KnowMem sets as (questions, in-context examples).
FINETUNE_SETS = {
    "target": (("forget", "retain1", "retain2"), (("forget_qa", "forget_qa_icl"), ("retain_qa", "retain_qa_icl"))),
    "retain": (("retain1", "retain2"), (("retain_qa", "retain_qa_icl"),)),
}


def finetune_sets(source: str | Path, role: str) -> tuple[list[dict], list[tuple[list[dict], list[dict]]]]:
    """What the built-in ``target`` or ``retain`` model learns, read from a benchmark folder.

    Returns:
        The text rows of its raw splits, and its KnowMem sets as ``(questions, in-context examples)``:
        the target learns forget, retain1 and retain2 and both question sets; the retain model
        learns retain1 and retain2 and the retain questions. Neither ever sees a holdout article.
    """
    from unlearn.data.muse import load_muse_corpus, load_muse_split

    raw, knowmem = FINETUNE_SETS[role]
    texts = [row for split in raw for row in load_muse_corpus(source, split)]
    qa = [(load_muse_split(source, "knowmem", questions), load_muse_split(source, "knowmem", icl))
          for questions, icl in knowmem]
    return texts, qa


def tokenizer_texts(source: str | Path) -> list[str]:
    """Every article and question of the benchmark, for training the built-in tokenizer.

    Holdout articles are included on purpose: a token seen only in forget articles would keep its
    random embedding in the retain model, and tell forget from holdout apart for it by the tokenizer
    alone; with holdout text in the tokenizer, forget and holdout are alike to the retain model.
    """
    from unlearn.data.muse import knowmem_prompt, load_muse_corpus, load_muse_split

    texts = [row["text"] for split in ROLES for row in load_muse_corpus(source, split)]
    for split in ("forget_qa", "retain_qa", "forget_qa_icl", "retain_qa_icl"):
        rows = load_muse_split(source, "knowmem", split)
        texts += [knowmem_prompt(row["question"], []) + row["answer"] for row in rows]
    return texts
