"""A fictitious-authors benchmark in the file layout and schema of TOFU, generated offline.

TOFU (Maini et al., 2024) fine-tunes a model on question/answer pairs about fictitious authors,
then asks it to forget some of them. This builds a benchmark of the same shape from a seed, for
models too small to know real-world facts: each fact is one "author name -> attribute" association
drawn from the pools in ``_pools.py``, answers are short, and the general-knowledge splits (real
writers, world capitals) are learned during fine-tuning instead of pretraining. Holdout authors,
which no model is trained on, come separately (:func:`generate_holdout`).
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass

from unlearn.data import _pools as pools

ATTRIBUTES = tuple(pools.TEMPLATES)
NUM_PERTURBED = 5  # wrong answers per author question, as in TOFU
NUM_GENERAL_PERTURBED = 3  # wrong answers per general-knowledge question, as in TOFU


@dataclass(frozen=True)
class BenchmarkSpec:
    """Sizes and seed of a generated benchmark.

    Attributes:
        num_authors: Fictitious authors; each is a contiguous block of rows in ``full``.
        questions_per_author: Questions per author, each about a different attribute.
        num_general_facts: Rows of ``real_authors_perturbed`` and of ``world_facts_perturbed``.
        forget_percents: Forget-set sizes in percent of ``full``; each gives ``forgetXX``,
            ``forgetXX_perturbed`` and ``retain{100-XX}``.
        retain_perturbed_rows: Rows of ``retain_perturbed``; None means 10% of ``full`` (TOFU's
            400 of 4000).
        seed: Seed of every random choice; the same spec always gives the same benchmark.
    """

    num_authors: int = 40
    questions_per_author: int = 10
    num_general_facts: int = 40
    forget_percents: tuple[int, ...] = (1, 5, 10)
    retain_perturbed_rows: int | None = None
    seed: int = 0


def _names() -> list[tuple[str, str]]:
    """Every (gender, full name) the pools can make."""
    return [(gender, f"{first} {last}")
            for gender, firsts in (("male", pools.MALE_FIRST), ("female", pools.FEMALE_FIRST))
            for first in firsts for last in pools.LAST]


def _general_facts() -> tuple[list[tuple[str, str, list[str]]], list[tuple[str, str, list[str]]]]:
    """(question, answer, pool of same-kind answers) of real writers and of world facts."""
    writers, books, countries = (list(dict.fromkeys(column)) for column in zip(*pools.WRITERS))
    real = []
    for writer, book, country in pools.WRITERS:
        real += [(f"Who wrote '{book}'?", writer, writers),
                 (f"Which book is {writer} best known for?", book, books),
                 (f"Which country was {writer} from?", country, countries)]
    capitals, continents = (list(dict.fromkeys(column)) for column in list(zip(*pools.NATIONS))[1:])
    world = []
    for country, capital, continent in pools.NATIONS:
        world += [(f"What is the capital of {country}?", capital, capitals),
                  (f"On which continent is {country}?", continent, continents)]
    return real, world


def _forget_authors(spec: BenchmarkSpec, percent: int) -> int:
    # Whole authors, rounded half up, at least one and never all of them (the retain set stays).
    return max(1, min(spec.num_authors - 1, int(spec.num_authors * percent / 100 + 0.5)))


def _retain_perturbed_rows(spec: BenchmarkSpec) -> int:
    smallest_retain = spec.questions_per_author * min(
        spec.num_authors - _forget_authors(spec, p) for p in spec.forget_percents)
    if spec.retain_perturbed_rows is not None:
        if not 1 <= spec.retain_perturbed_rows <= smallest_retain:
            raise ValueError(
                f"retain_perturbed_rows={spec.retain_perturbed_rows} must be between 1 and {smallest_retain}, "
                "the rows of the smallest retain split, so that it never overlaps a forget split; "
                "lower it, or use None for 10% of full.")
        return spec.retain_perturbed_rows
    return max(1, min(smallest_retain, round(spec.num_authors * spec.questions_per_author / 10)))


def _validate(spec: BenchmarkSpec) -> None:
    """Raises ValueError saying what is wrong with ``spec`` and how to fix it."""
    for field in ("num_authors", "questions_per_author", "num_general_facts"):
        value = getattr(spec, field)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{field}={value!r} must be a positive integer.")
    max_authors = min(len(_names()), len(pools.TITLES) // 2, len(pools.PLACES) * len(pools.YEARS))
    if not 2 <= spec.num_authors <= max_authors:
        raise ValueError(f"num_authors={spec.num_authors} must be between 2 (one to forget, one to retain) "
                         f"and {max_authors} (the unique names and titles the pools allow; extend _pools.py).")
    if spec.questions_per_author > len(ATTRIBUTES):
        raise ValueError(f"questions_per_author={spec.questions_per_author} exceeds the {len(ATTRIBUTES)} "
                         f"attributes an author has ({', '.join(ATTRIBUTES)}); use at most {len(ATTRIBUTES)}.")
    max_general = min(len(facts) for facts in _general_facts())
    if spec.num_general_facts > max_general:
        raise ValueError(f"num_general_facts={spec.num_general_facts} exceeds the {max_general} facts available; "
                         f"use at most {max_general} or add writers/nations to _pools.py.")
    percents = spec.forget_percents
    if not percents or len(set(percents)) != len(percents) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 99 for p in percents):
        raise ValueError(f"forget_percents={percents!r} must be a non-empty tuple of distinct integers "
                         "in 1..99, e.g. (1, 5, 10).")
    # An author's own values are never wrong answers, so a pool needs room for them and five more.
    for attribute, pool in pools.VALUE_POOLS.items():
        sharing = sum(other is pool for other in pools.VALUE_POOLS.values())
        if len(pool) < NUM_PERTURBED + sharing:
            raise ValueError(f"The value pool of '{attribute}' has {len(pool)} values; it needs at least "
                             f"{NUM_PERTURBED + sharing} for {NUM_PERTURBED} distinct wrong answers.")
    for _, answer, pool in [fact for facts in _general_facts() for fact in facts]:
        if len(pool) <= NUM_GENERAL_PERTURBED:
            raise ValueError(f"Too few answers like '{answer}' for {NUM_GENERAL_PERTURBED} wrong ones; "
                             "extend _pools.py.")
    _retain_perturbed_rows(spec)


def _make_authors(rng: random.Random, count: int, taken: list[dict[str, str]] | tuple = ()) -> list[dict[str, str]]:
    # Names, (birthplace, year) pairs and titles are drawn without replacement so that every
    # author, and the author meant by the name question, is unambiguous. ``taken`` authors (the
    # benchmark's, when drawing holdout authors) lend none of theirs; with none taken the pools,
    # and so the draws, are exactly those of the first release.
    names_taken = {author["name"] for author in taken}
    births_taken = {(author["place"], author["year"]) for author in taken}
    titles_taken = {author[key] for author in taken for key in ("first_book", "last_book")}
    names = rng.sample([n for n in _names() if n[1] not in names_taken], count)
    births = rng.sample([(place, year) for place in pools.PLACES for year in pools.YEARS
                         if (place, year) not in births_taken], count)
    titles = rng.sample([title for title in pools.TITLES if title not in titles_taken], 2 * count)
    authors = []
    for i, ((gender, name), (place, year)) in enumerate(zip(names, births)):
        author = {"name": name, "gender": gender, "place": place, "year": year,
                  "first_book": titles[2 * i], "last_book": titles[2 * i + 1]}
        for attribute in ("genre", "father", "mother", "award", "home", "hobby", "publisher"):
            author[attribute] = rng.choice(pools.VALUE_POOLS[attribute])
        authors.append(author)
    return authors


def _questions(rng: random.Random, authors: list[dict[str, str]], per_author: int) -> list[tuple]:
    """(author, attribute, question template index, answer template index) of each question, author by author."""
    items = []
    for author in authors:
        for index in sorted(rng.sample(range(len(ATTRIBUTES)), per_author)):
            questions, answers = pools.TEMPLATES[ATTRIBUTES[index]]
            items.append((author, ATTRIBUTES[index], rng.randrange(len(questions)), rng.randrange(len(answers))))
    return items


def _wrong_values(rng: random.Random, author: dict[str, str], attribute: str) -> list[str]:
    if attribute == "name":  # wrong names of the same gender, as the question names the gender
        pool = [name for gender, name in _names() if gender == author["gender"]]
    else:
        pool = pools.VALUE_POOLS[attribute]
    # None of the author's own values: the other book or the birthplace would not be clearly wrong.
    own = set(author.values())
    return rng.sample([value for value in pool if value not in own], NUM_PERTURBED)


def _author_rows(spec: BenchmarkSpec) -> tuple[list[dict], list[dict]]:
    """Rows of ``full`` and their perturbed versions, in the same order."""
    rng = random.Random(f"{spec.seed}:authors")
    items = _questions(rng, _make_authors(rng, spec.num_authors), spec.questions_per_author)
    used = {(attribute, a) for _, attribute, _, a in items}

    # A separate stream, so perturbations never change the rows of full.
    rng = random.Random(f"{spec.seed}:perturbed")
    full, perturbed = [], []
    for author, attribute, q, a in items:
        questions, answers = pools.TEMPLATES[attribute]
        value = author[attribute]
        question = questions[q].format(**author)
        answer = answers[a].format(**author, value=value)
        # The paraphrase uses wording the model saw on other authors' rows, when there is one.
        others = [i for i in range(len(answers)) if i != a]
        p = rng.choice([i for i in others if (attribute, i) in used] or others)
        q2 = rng.choice([i for i in range(len(questions)) if i != q])
        full.append({"question": question, "answer": answer})
        perturbed.append({
            "question": question,
            "answer": answer,
            "paraphrased_answer": answers[p].format(**author, value=value),
            "perturbed_answer": [answers[p].format(**author, value=wrong)
                                 for wrong in _wrong_values(rng, author, attribute)],
            "paraphrased_question": questions[q2].format(**author),
        })
    return full, perturbed


def _general_rows(rng: random.Random, facts: list, count: int) -> tuple[list[dict], list[dict]]:
    """TOFU's perturbed rows and multiple-choice rows of ``count`` sampled facts."""
    perturbed, choices = [], []
    for question, answer, pool in rng.sample(facts, count):
        wrong = rng.sample([value for value in pool if value != answer], NUM_GENERAL_PERTURBED)
        perturbed.append({"question": question, "answer": answer, "perturbed_answer": wrong})
        options = list(wrong)
        options.insert(rng.randrange(len(options) + 1), answer)
        choices.append({"question": question, **{f"option{i}": o for i, o in enumerate(options, 1)},
                        "answer": answer})
    return perturbed, choices


def generate_benchmark(spec: BenchmarkSpec = BenchmarkSpec()) -> dict[str, list]:
    """Generates every split of the benchmark.

    Args:
        spec: Sizes and seed.

    Returns:
        Split name (TOFU's file stem) -> list of row dicts, plus ``"idontknow"`` -> list of
        refusal sentences.

    Raises:
        ValueError: ``spec`` asks for something the pools cannot give; the message says how to fix it.
    """
    _validate(spec)
    full, perturbed = _author_rows(spec)
    splits: dict[str, list] = {"full": full}
    for percent in spec.forget_percents:
        rows = _forget_authors(spec, percent) * spec.questions_per_author
        # Deep copies: a caller editing one split must not silently edit another.
        splits[f"forget{percent:02d}"] = copy.deepcopy(full[-rows:])
        splits[f"forget{percent:02d}_perturbed"] = copy.deepcopy(perturbed[-rows:])
        splits[f"retain{100 - percent:02d}"] = copy.deepcopy(full[:-rows])
    splits["retain_perturbed"] = perturbed[:_retain_perturbed_rows(spec)]
    rng = random.Random(f"{spec.seed}:general")
    for name, facts in zip(("real_authors", "world_facts"), _general_facts()):
        splits[f"{name}_perturbed"], splits[name] = _general_rows(rng, facts, spec.num_general_facts)
    splits["idontknow"] = list(pools.IDONTKNOW)
    return splits


def generate_holdout(spec: BenchmarkSpec = BenchmarkSpec()) -> dict[str, list]:
    """TOFU's holdout splits: for each ``forgetXX``, ``holdoutXX`` about as many authors the models never see.

    TOFU's hub dataset (``locuslab/TOFU``, configs ``holdout01/05/10``) holds question/answer rows of
    fictitious authors outside ``full``; membership-inference metrics compare the forget set (seen,
    then unlearned) with them (open-unlearning, ``configs/eval/tofu.yaml``: ``holdout_split``).
    Holdout authors share no name, (birthplace, year) or title with the benchmark's, and are drawn
    from their own random stream after everything else, so :func:`generate_benchmark` is unchanged
    by them. Like the forget splits, ``holdoutXX`` is the last authors' rows of one list.

    Raises:
        ValueError: ``spec`` is invalid, or the pools have too few unused names, births or titles
            left for the largest holdout split.
    """
    _validate(spec)
    counts = {percent: _forget_authors(spec, percent) for percent in spec.forget_percents}
    births = len(pools.PLACES) * len(pools.YEARS)
    room = min(len(_names()), len(pools.TITLES) // 2, births) - spec.num_authors
    if max(counts.values()) > room:
        raise ValueError(f"num_authors={spec.num_authors} leaves room for {room} holdout authors in the pools, "
                         f"and the largest holdout split needs {max(counts.values())}; lower num_authors or the "
                         "largest forget percent, or extend _pools.py.")
    taken = _make_authors(random.Random(f"{spec.seed}:authors"), spec.num_authors)  # the benchmark's own authors
    rng = random.Random(f"{spec.seed}:holdout")
    authors = _make_authors(rng, max(counts.values()), taken)
    rows = []
    for author, attribute, q, a in _questions(rng, authors, spec.questions_per_author):
        questions, answers = pools.TEMPLATES[attribute]
        rows.append({"question": questions[q].format(**author),
                     "answer": answers[a].format(**author, value=author[attribute])})
    return {f"holdout{percent:02d}": copy.deepcopy(rows[-count * spec.questions_per_author:])
            for percent, count in counts.items()}


def finetune_rows(splits: dict[str, list], split: str = "full") -> list[dict]:
    """Question/answer rows a model is fine-tuned on.

    Args:
        splits: As returned by :func:`generate_benchmark` (or read back from its files).
        split: The authors to learn: ``"full"`` for the target model, ``"retain90"`` for the
            retain model of ``forget10``.

    Returns:
        The rows of ``split`` followed by every general-knowledge row (``real_authors_perturbed``
        and ``world_facts_perturbed``), each reduced to question and answer. Our models have no
        pretraining, so general knowledge is learned here alongside the authors.

    Raises:
        KeyError: ``split`` is not a question/answer split of ``splits``.
    """
    if split not in splits or split == "idontknow":
        available = ", ".join(name for name in splits if name != "idontknow")
        raise KeyError(f"No split '{split}' to fine-tune on; available: {available}.")
    general = splits["real_authors_perturbed"] + splits["world_facts_perturbed"]
    return [{"question": row["question"], "answer": row["answer"]} for row in splits[split] + general]
