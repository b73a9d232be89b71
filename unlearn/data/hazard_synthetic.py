"""A built-in, offline stand-in for WMDP: invented "hazardous" facts to forget beside general facts to keep.

WMDP (Li et al., 2024) asks a model to forget hazardous knowledge, given raw-text forget and retain
corpora, and measures it with 4-choice questions (forget accuracy should fall to chance, 25%) next to
general-knowledge questions (accuracy should stay). This builds the same setting from a seed, for
models too small to know anything: a hazardous domain of fictional agents and compounds with made-up
properties, and a general domain of fictional towns and musicians (``_hazard_pools.py``; the two share
no entity, value or word). Each fact is one "entity -> attribute value" association.

What it makes (:func:`generate_hazard_benchmark`), written by :func:`write_hazard_benchmark` in the
local WMDP layout of :mod:`unlearn.data.wmdp`::

    hazard/test.json    4-choice questions about the hazardous facts: the forget evaluation
    general/test.json   4-choice questions about the general facts: the utility evaluation
    hazard/train.json   other 4-choice questions about the same hazardous facts, for fine-tuning
    general/train.json  the same for the general facts
    corpus/forget.json  {"text"} documents stating every hazardous fact: the forget corpus
    corpus/retain.json  {"text"} documents stating every general fact: the retain corpus

**Fine-tuning the target model.** A tiny model has no pretraining, so it learns the facts *and* the
question format here: :func:`target_model_rows` is both corpora plus the ``train`` questions as
prompt/completion pairs in the evaluation's exact prompt (:func:`unlearn.data.wmdp.choice_prompt`) with
the right answer as completion (its letter, or its text in the ``cloze`` style), so accuracy is well
above chance before unlearning. The evaluated questions are held out: a ``train`` question asks about
the same fact in another wording (the pools' second question template), with other wrong choices and,
across a fact's ``train`` questions, the right answer under different letters; the ``test`` question
draws new wrong choices and a letter independent of those, balanced over A-D. So no evaluated string
is ever trained, and a model answers only by knowing the fact. The retain model
(:func:`retain_model_rows`) learns the general domain only.

**Which style** (:data:`BUILTIN_STYLE`). Measured on the built-in tiny Llama (hidden 128, 4 layers,
vocabulary 1,024; AdamW lr 3e-3, batch 16, token-mean NLL, one warm-up epoch, as ``finetune`` trains),
default spec: in the ``letters`` style (WMDP's template) it never learns to pick a letter for a held-out
question (40 epochs, 1,880 steps: forget 31%, general 30%, chance 25%) while memorising the trained
ones (73%): choosing among lettered options is an ability that comes with pretraining. In the ``cloze``
style (MMLU's continuation template, the same facts and held-out wording) it reaches forget 57.5% /
general 47% after 20 epochs and 87.5% / 65% after 40. So the built-in model is trained and evaluated
in the ``cloze`` style, best with 40 epochs; a pretrained model fine-tuned on these files, and WMDP
itself, use ``letters``.
``fit data=hazard_builtin`` (configs/data/hazard_builtin.yaml: cloze, 40 epochs, ``data.max_length`` 128,
one thread) trained a target scoring forget 65.8% / general 64.6%, retain model 35.8% / 50%
(docs/multiple_choice.md).
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path

from unlearn.data import _hazard_pools as pools
from unlearn.data.wmdp import STYLES, choice_continuations, choice_prompt, load_multiple_choice
from unlearn.data.benchmark_files import jsonl_bytes, write_files
from unlearn.identity import short_hash, stable_json

NUM_CHOICES = 4
BUILTIN_STYLE = "cloze"  # the style the built-in tiny model can learn (module docstring, "Which style")
FORGET_CONFIG, GENERAL_CONFIG, CORPUS_CONFIG = "hazard", "general", "corpus"
FILES = ("hazard/test", "hazard/train", "general/test", "general/train", "corpus/forget", "corpus/retain")


@dataclass(frozen=True)
class HazardSpec:
    """Sizes and seed of the generated stand-in; the same spec always gives the same files.

    Attributes:
        num_hazard_entities: Fictional agents and compounds (half each, agents first), 5 facts each.
        num_general_entities: Fictional towns and musicians (half each), 4 facts each.
        train_questions_per_fact: Fine-tuning questions per fact (1-4), each with the answer under another letter.
        documents_per_entity: Corpus documents per entity, each stating all its facts in its own words and order.
        seed: Seed of every random choice.
    """

    num_hazard_entities: int = 24
    num_general_entities: int = 24
    train_questions_per_fact: int = 3
    documents_per_entity: int = 2
    seed: int = 0


def _names() -> dict[str, list[str]]:
    hazard = [stem + ending for stem in pools.HAZARD_STEMS for ending in pools.HAZARD_ENDINGS]
    towns = [stem + ending for stem in pools.TOWN_STEMS for ending in pools.TOWN_ENDINGS]
    musicians = [f"{first} {last}" for first in pools.MUSICIAN_FIRST for last in pools.MUSICIAN_LAST]
    # Agents and compounds draw from one pool of names, each name used once (see _entities).
    return {"agent": hazard, "compound": hazard, "town": towns, "musician": musicians}


def validate_spec(spec: HazardSpec) -> None:
    """Raises ValueError saying what is wrong with ``spec`` and how to fix it."""
    for name in ("num_hazard_entities", "num_general_entities", "train_questions_per_fact", "documents_per_entity"):
        value = getattr(spec, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer.")
    if spec.train_questions_per_fact > NUM_CHOICES:
        raise ValueError(f"train_questions_per_fact={spec.train_questions_per_fact} must be at most {NUM_CHOICES}: "
                         "each puts the right answer under another letter.")
    names = _names()
    limits = {"num_hazard_entities": len(names["agent"]),
              "num_general_entities": 2 * min(len(names["town"]), len(names["musician"]))}
    for name, limit in limits.items():
        if getattr(spec, name) > limit:
            raise ValueError(f"{name}={getattr(spec, name)} exceeds the {limit} names the pools allow; "
                             "lower it or extend _hazard_pools.py.")


def _entities(rng: random.Random, kinds: dict[str, dict], count: int) -> list[dict]:
    """``count`` entities split evenly over ``kinds``, each with a name and one value per attribute."""
    names, used, out = _names(), set(), []
    for number, (kind, attributes) in enumerate(kinds.items()):
        n = count // len(kinds) + (number < count % len(kinds))
        chosen = rng.sample([name for name in names[kind] if name not in used], n)
        used.update(chosen)
        for name in chosen:
            out.append({"kind": kind, "name": name,
                        "facts": {attribute: rng.choice(pool) for attribute, (_, _, pool) in attributes.items()}})
    return out


def _question(rng: random.Random, entity: dict, attribute: str, template: str, pool: list[str], position: int,
              subject: str, avoid: list[str] | None = None) -> dict:
    value = entity["facts"][attribute]
    while True:  # wrong choices from the same pool; never the exact choice list of ``avoid``
        wrong = rng.sample([v for v in pool if v != value], NUM_CHOICES - 1)
        choices = wrong[:position] + [value] + wrong[position:]
        if choices != avoid:
            break
    return {"question": template.format(name=entity["name"]), "choices": choices, "answer": position,
            "subject": subject}


def _questions(rng: random.Random, entities: list[dict], kinds: dict[str, dict], subject: str,
               per_fact: int) -> tuple[list[dict], list[dict]]:
    """``(test, train)`` questions: one held-out question per fact, ``per_fact`` fine-tuning questions."""
    facts = [(entity, attribute) for entity in entities for attribute in kinds[entity["kind"]]]
    positions = [i % NUM_CHOICES for i in range(len(facts))]
    rng.shuffle(positions)  # the held-out answers spread evenly over the letters
    test, train = [], []
    for (entity, attribute), position in zip(facts, positions):
        (asked, trained), _, pool = kinds[entity["kind"]][attribute]
        held_out = _question(rng, entity, attribute, asked, pool, position, subject)
        test.append(held_out)
        for letter in rng.sample(range(NUM_CHOICES), per_fact):
            train.append(_question(rng, entity, attribute, trained, pool, letter, subject, held_out["choices"]))
    return test, train


def _documents(rng: random.Random, entities: list[dict], kinds: dict[str, dict], per_entity: int) -> list[dict]:
    docs = []
    for entity in entities:
        attributes = kinds[entity["kind"]]
        for number in range(per_entity):
            sentences = []
            for i, (attribute, (_, statements, _)) in enumerate(attributes.items()):
                template = statements[(number + i) % len(statements)]  # each document words a fact its own way
                sentences.append(template.format(name=entity["name"], value=entity["facts"][attribute]))
            rng.shuffle(sentences)
            docs.append({"text": " ".join(s[0].upper() + s[1:] for s in sentences)})
    return docs


def generate_hazard_benchmark(spec: HazardSpec = HazardSpec()) -> dict[str, list[dict]]:
    """Every file of the stand-in, keyed as :data:`FILES` (``"hazard/test"`` -> its rows).

    Raises:
        ValueError: ``spec`` asks for more than the pools hold, or a non-positive size.
    """
    validate_spec(spec)
    out = {}
    for config, corpus, kinds, count, subject in (
            (FORGET_CONFIG, "forget", pools.HAZARD_KINDS, spec.num_hazard_entities, pools.HAZARD_SUBJECT),
            (GENERAL_CONFIG, "retain", pools.GENERAL_KINDS, spec.num_general_entities, pools.GENERAL_SUBJECT)):
        entities = _entities(random.Random(f"{spec.seed}:{config}:entities"), kinds, count)
        out[f"{config}/test"], out[f"{config}/train"] = _questions(
            random.Random(f"{spec.seed}:{config}:questions"), entities, kinds, subject, spec.train_questions_per_fact)
        out[f"{CORPUS_CONFIG}/{corpus}"] = _documents(
            random.Random(f"{spec.seed}:{config}:documents"), entities, kinds, spec.documents_per_entity)
    return {name: out[name] for name in FILES}


# --- Files ----------------------------------------------------------------------------------------------

def write_hazard_benchmark(out_dir: str | Path, bench: dict[str, list[dict]]) -> Path:
    """Write the files atomically (under a temporary name, then renamed: never half a benchmark).

    ``out_dir`` may exist if empty or already holding exactly these files (then nothing is written).

    Raises:
        RunFolderError: ``out_dir`` is a file, or a folder holding something else.
    """
    return write_files(Path(out_dir), {f"{name}.json": jsonl_bytes(bench[name]) for name in FILES})


def builtin_hazard_dir(cache_dir: str | Path, spec: HazardSpec = HazardSpec()) -> Path:
    """The cached folder of the stand-in for ``spec`` (``<cache_dir>/benchmarks/hazard-<key>``), made on first use."""
    folder = Path(cache_dir).expanduser() / "benchmarks" / f"hazard-{short_hash(stable_json(asdict(spec)), 12)}"
    if not all((folder / f"{name}.json").is_file() for name in FILES):
        write_hazard_benchmark(folder, generate_hazard_benchmark(spec))
    return folder


def load_hazard_benchmark(folder: str | Path) -> dict[str, list[dict]]:
    """The files of :func:`write_hazard_benchmark` read back (questions checked), keyed as :data:`FILES`."""
    from unlearn.data.textfiles import parse_json_rows

    bench = {}
    for name in FILES:
        config, split = name.split("/")
        bench[name] = (parse_json_rows(Path(folder) / f"{name}.json") if config == CORPUS_CONFIG
                       else load_multiple_choice(folder, config, split))
    return bench


# --- What each model and each evaluation reads ----------------------------------------------------------

def as_completions(rows: list[dict], style: str = "letters") -> list[dict]:
    """Questions as fine-tuning pairs: the evaluation's prompt in ``style`` and the right answer's continuation
    (``" B"``; the answer's text in the cloze style, where a fact's questions are one pair, kept once)."""
    pairs = [{"prompt": choice_prompt(r, style), "completion": choice_continuations(r, style)[r["answer"]]}
             for r in rows]
    return list({(p["prompt"], p["completion"]): p for p in pairs}.values())


def target_model_rows(bench: dict[str, list[dict]], style: str = BUILTIN_STYLE) -> list[dict]:
    """What the target model is fine-tuned on: both corpora (``{"text"}``) and every ``train`` question as
    ``{"prompt", "completion"}`` (tokenise with :func:`unlearn.data.wmdp.tokenize_training_rows`).

    ``style`` must be the evaluation's (``MultipleChoiceEvaluator(..., style=...)``)."""
    questions = bench[f"{FORGET_CONFIG}/train"] + bench[f"{GENERAL_CONFIG}/train"]
    return bench[f"{CORPUS_CONFIG}/forget"] + bench[f"{CORPUS_CONFIG}/retain"] + as_completions(questions, style)


def retain_model_rows(bench: dict[str, list[dict]], style: str = BUILTIN_STYLE) -> list[dict]:
    """What the retain model (never shown the hazardous domain) is fine-tuned on: the general half."""
    return bench[f"{CORPUS_CONFIG}/retain"] + as_completions(bench[f"{GENERAL_CONFIG}/train"], style)


def unlearning_rows(bench: dict[str, list[dict]]) -> tuple[list[dict], list[dict]]:
    """``(forget, retain)`` rows of an unlearning run: the two corpora as documents (``data.*_format=text``)."""
    return list(bench[f"{CORPUS_CONFIG}/forget"]), list(bench[f"{CORPUS_CONFIG}/retain"])


def evaluation_sets(bench: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """The sets of a :class:`~unlearn.evaluation.multiple_choice.MultipleChoiceEvaluator`: held-out questions."""
    return {"forget": bench[f"{FORGET_CONFIG}/test"], "general": bench[f"{GENERAL_CONFIG}/test"]}


def tokenizer_texts(bench: dict[str, list[dict]]) -> list[str]:
    """Every text a model reads here (documents, prompts of both styles, answers), to train the built-in tokenizer."""
    questions = [r for name in FILES if not name.startswith(CORPUS_CONFIG) for r in bench[name]]
    return ([r["text"] for name in FILES if name.startswith(CORPUS_CONFIG) for r in bench[name]]
            + [choice_prompt(r, style) + "".join(choice_continuations(r, style))
               for r in questions for style in STYLES])
