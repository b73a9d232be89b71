"""Running a model on MUSE's evaluation sets, batched, and sharded across ranks under DDP.

Generations (VerbMem, KnowMem forget and retain) go through
:func:`unlearn.evaluation.generation.greedy_generate` in left-padded, length-sorted batches; the
privleak texts and the VerbMem completions go through one
:func:`unlearn.models.token_stats.token_stats` pass, from which MUSE's Min-40% (PrivLeak), the
membership-inference attacks and exact memorisation / extraction strength are read. Each rank takes
a :func:`~unlearn.evaluation.ranks.shard` of every list, and :meth:`MuseEvaluator.assemble` puts
the gathered per-example values back in row order, so every rank ends with the same result as one
process. Formulas: :mod:`unlearn.evaluation.muse_metrics` and :mod:`unlearn.evaluation.mia`.

Two small departures from MUSE's loop, both from sharing ``greedy_generate`` with TOFU: the prompts
are left-padded into batches (MUSE generates one at a time), and each decoded generation is stripped
of surrounding whitespace *before* KnowMem's stop-word cut (MUSE cuts the raw text, so an answer
opening with ``"\n\n"`` is empty there). ROUGE ignores whitespace, so only that rare opening differs.
"""

from __future__ import annotations

import numpy as np
import torch

from unlearn.data.formatting import IGNORE_INDEX, TokenizedExample
from unlearn.errors import DataError
from unlearn.evaluation.generation import greedy_generate
from unlearn.evaluation.mia import (
    MIA_ATTACKS,
    attack_scores,
    exact_memorization,
    extraction_strength,
    gradnorm_scores,
    scored_text,
)
from unlearn.evaluation.muse_metrics import (
    KNOWMEM_MAX_NEW_TOKENS,
    PRIVLEAK_K,
    VERBMEM_MAX_NEW_TOKENS,
    cut_at_stop_words,
    knowmem_prompt,
    muse_min_k_score,
    verbmem_reference,
)
from unlearn.evaluation.muse_results import MUSE_MIN_K, GenerationSet, MuseResult
from unlearn.evaluation.ranks import gather_objects, shard
from unlearn.identity import short_hash, stable_json, tokenizer_fingerprint
from unlearn.models.token_stats import TokenStats, token_stats

__all__ = ["MUSE_SETS", "MuseEvaluator", "MuseResult", "completion_example"]

MUSE_SETS = ("verbmem_forget", "knowmem_forget_qa", "knowmem_forget_qa_icl", "knowmem_retain_qa",
             "knowmem_retain_qa_icl", "privleak_forget", "privleak_holdout")
_KNOWMEM = {"knowmem_forget": "knowmem_forget_qa", "knowmem_retain": "knowmem_retain_qa"}
_TEXTS = ("privleak_forget", "privleak_holdout", "verbmem_forget")  # the token_stats lists


def completion_example(tokenizer, prefix: str, text: str, max_length: int,
                       insert_space: bool = False) -> TokenizedExample:
    """``prefix`` then ``text`` tokenised once (BOS, no EOS), the text's tokens labelled, cut to ``max_length``.

    open-unlearning ``src/data/utils.py``, ``preprocess_pretraining_instance`` (its ``CompletionDataset``
    for MUSE's privleak texts, prefix ``""``, and VerbMem, ``insert_space=True``): the first
    ``len(tokenize(prefix))`` tokens, and always position 0, are masked. open-unlearning cuts the text
    to 2048 tokens after the prefix; here the whole sequence is cut to ``max_length``.
    """
    ids = list(tokenizer(prefix + (" " if insert_space else "") + text, add_special_tokens=True)["input_ids"])
    n_prefix = max(1, len(tokenizer(prefix, add_special_tokens=True)["input_ids"]))
    truncated = len(ids) > max_length
    ids = ids[:max_length]
    return TokenizedExample(ids, [IGNORE_INDEX if i < n_prefix else t for i, t in enumerate(ids)], truncated)


def _ids(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=True)["input_ids"])  # MUSE tokenises prompts with BOS


class MuseEvaluator:
    """Computes :class:`MuseResult` for a model; tokenises every set once, at construction.

    Args:
        tokenizer: The model's tokenizer (pad token set).
        sets: Rows of :data:`MUSE_SETS`: ``verbmem_forget`` ``[{prompt, gt}]``; ``knowmem_{forget,retain}_qa``
            and their ``_icl`` in-context pairs ``[{question, answer}]``; ``privleak_{forget,holdout}``
            ``[{text}]``. MUSE's ``privleak_retain`` never enters its PrivLeak and is ignored.
        max_length: Cap on tokens of a privleak text or VerbMem prompt + ``gt`` when scoring (MUSE: none;
            open-unlearning: 2048 text tokens). Generation prompts are not cut.
        batch_size: Sequences per forward pass; prompts per generation batch.
        mia_attacks: Attacks whose forget-vs-holdout AUC is reported (``gradnorm``: one backward pass per
            text, outside ``torch.inference_mode``; ``reference``: once compared with a retain model).
        mia_k: Min-K% and Min-K%++'s fraction for the attacks (PrivLeak always uses MUSE's 0.4).
        gradnorm_p: GradNorm's p-norm (open-unlearning's MUSE config: 2).
    """

    def __init__(self, tokenizer, sets: dict[str, list[dict]], max_length: int, batch_size: int = 32, *,
                 verbmem_max_new_tokens: int = VERBMEM_MAX_NEW_TOKENS,
                 knowmem_max_new_tokens: int = KNOWMEM_MAX_NEW_TOKENS,
                 mia_attacks: tuple[str, ...] = MIA_ATTACKS, mia_k: float = PRIVLEAK_K, gradnorm_p: float = 2):
        missing = [name for name in MUSE_SETS if name not in sets]
        if missing:
            raise DataError(f"MUSE evaluation sets missing: {', '.join(missing)}; give every one of "
                            f"{', '.join(MUSE_SETS)} (an empty list skips a KnowMem set).")
        for name in ("privleak_forget", "privleak_holdout"):
            if not sets[name]:
                raise DataError(f"MUSE set {name} is empty; PrivLeak and the attacks need forget and holdout texts.")
        unknown = sorted(set(mia_attacks) - set(MIA_ATTACKS))
        if unknown:
            raise ValueError(f"unknown membership-inference attacks {unknown}; choose from {', '.join(MIA_ATTACKS)}")
        self.tokenizer, self.sets, self.batch_size = tokenizer, sets, batch_size
        self.attacks, self.mia_k, self.gradnorm_p = tuple(mia_attacks), mia_k, gradnorm_p
        self.max_new_tokens = {"verbmem_forget": verbmem_max_new_tokens, "knowmem_forget": knowmem_max_new_tokens,
                               "knowmem_retain": knowmem_max_new_tokens}
        verbmem = sets["verbmem_forget"]
        self.prompts = {"verbmem_forget": [_ids(tokenizer, r["prompt"]) for r in verbmem]}
        self.truths = {"verbmem_forget": [verbmem_reference(tokenizer, r["gt"], verbmem_max_new_tokens)
                                          for r in verbmem]}
        for name, qa in _KNOWMEM.items():
            icl = sets[f"{qa}_icl"]
            self.prompts[name] = [_ids(tokenizer, knowmem_prompt(r["question"], icl)) for r in sets[qa]]
            self.truths[name] = [r["answer"] for r in sets[qa]]
        self.examples = {name: [completion_example(tokenizer, "", r["text"], max_length) for r in sets[name]]
                         for name in ("privleak_forget", "privleak_holdout")}
        self.examples["verbmem_forget"] = [completion_example(tokenizer, r["prompt"], r["gt"], max_length, True)
                                           for r in verbmem]
        self.texts = {name: [scored_text(tokenizer, e) for e in self.examples[name]] for name in _TEXTS}
        # The stored retain results are keyed by these (unlearn.evaluation.cache).
        self.settings = {"benchmark": "muse", "max_length": max_length, "max_new_tokens": self.max_new_tokens,
                         "rows": {name: len(rows) for name, rows in sets.items() if name in MUSE_SETS},
                         "sets": short_hash(stable_json({name: sets[name] for name in MUSE_SETS})),
                         "tokenizer": tokenizer_fingerprint(tokenizer), "prompts": short_hash(self.prompts),
                         "examples": short_hash({name: [(e.input_ids, e.labels) for e in examples]
                                                 for name, examples in self.examples.items()})}

    @torch.no_grad()
    def __call__(self, model, rank: int | None = None, world_size: int | None = None, context=None,
                 gradients: bool = True) -> MuseResult:
        """Evaluate ``model``; under DDP call it on every rank (it gathers).

        Args:
            rank, world_size: Default to the initialised process group, else ``0, 1``.
            context: Optional precision context for the scoring passes (see ``token_stats``).
            gradients: Whether the GradNorm attack may take gradients (not while weights are sharded).
        """
        if rank is None or world_size is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank = torch.distributed.get_rank() if distributed else 0
            world_size = torch.distributed.get_world_size() if distributed else 1
        part = self.evaluate_shard(model, rank, world_size, context, gradients)
        result = self.assemble(gather_objects([part], world_size))
        if "gradnorm" in self.attacks and not gradients:
            result.info["gradnorm_reason"] = "not computed while the weights are sharded (FSDP, DeepSpeed ZeRO-3)"
        return result

    def evaluate_shard(self, model, rank: int, world_size: int, context=None,
                       gradients: bool = True) -> dict[str, dict[int, object]]:
        """This rank's share, ``{set name: {row: value}}`` (generations, per-text scores), for :meth:`assemble`."""
        part: dict[str, dict[int, object]] = {}
        pad = self.tokenizer.pad_token_id
        # KnowMem forget and retain share max_new_tokens, so their prompts share batches.
        for names in (("verbmem_forget",), ("knowmem_forget", "knowmem_retain")):
            items = [(name, i) for name in names for i in range(len(self.prompts[name]))]
            order = sorted(range(len(items)), key=lambda j: len(self.prompts[items[j][0]][items[j][1]]))
            mine = [items[j] for j in shard(order, rank, world_size)]
            texts = greedy_generate(model, self.tokenizer, [self.prompts[n][i] for n, i in mine],
                                    self.max_new_tokens[names[0]], self.batch_size)
            for (name, i), text in zip(mine, texts):
                part.setdefault(name, {})[i] = text if name == "verbmem_forget" else cut_at_stop_words(text)
        items = [(name, i) for name in _TEXTS for i in range(len(self.examples[name]))]
        order = sorted(range(len(items)), key=lambda j: len(self.examples[items[j][0]][items[j][1]].input_ids))
        mine = [items[j] for j in shard(order, rank, world_size)]
        stats = token_stats(model, [self.examples[n][i] for n, i in mine], pad, self.batch_size, context,
                            vocab_stats="min_k_plus_plus" in self.attacks)
        for j, (name, i) in enumerate(mine):
            part.setdefault(f"{name}_scores", {})[i] = self.text_values(name, i, stats.select([j]))
        if "gradnorm" in self.attacks and gradients:
            privleak = [(n, i) for n, i in mine if n != "verbmem_forget"]
            scores = gradnorm_scores(model, [self.examples[n][i] for n, i in privleak], self.gradnorm_p, context)
            for (name, i), score in zip(privleak, scores):
                part[f"{name}_scores"][i]["gradnorm"] = float(score)
        return part

    def text_values(self, name: str, row: int, stats: TokenStats) -> dict[str, float]:
        """Per-text numbers of one example's statistics (``stats`` holds that one example)."""
        if name == "verbmem_forget":
            match = stats.greedy_match[0]
            return {"exact_memorization": exact_memorization(match), "extraction_strength": extraction_strength(match)}
        values = {MUSE_MIN_K: muse_min_k_score(stats.logprob[0], PRIVLEAK_K)}
        scores = attack_scores(stats, self.mia_k, [self.texts[name][row]], tuple(self.attacks) + ("loss",))
        values.update({attack: float(score[0]) for attack, score in scores.items()})
        return values

    def assemble(self, parts: list[dict[str, dict[int, object]]]) -> MuseResult:
        """The result from every rank's :meth:`evaluate_shard` (duplicates from padding the shards collapse)."""
        joined: dict[str, dict[int, object]] = {}
        for part in parts:
            for name, values in part.items():
                joined.setdefault(name, {}).update(values)

        def rows(name: str, count: int) -> list:
            return [joined[name][i] for i in range(count)] if count else []

        generations = {}
        for name in ("verbmem_forget", *_KNOWMEM):
            source = self.sets[_KNOWMEM.get(name, name)]
            prompts = [r["prompt"] for r in source] if name == "verbmem_forget" else [r["question"] for r in source]
            generations[name] = GenerationSet(prompts, self.truths[name], rows(name, len(source)))
        scores = {}
        for split in ("forget", "holdout"):
            per_text = rows(f"privleak_{split}_scores", len(self.examples[f"privleak_{split}"]))
            scores[split] = {key: np.array([v[key] for v in per_text], dtype=np.float64) for key in per_text[0]}
        memo = rows("verbmem_forget_scores", len(self.examples["verbmem_forget"]))
        em = np.array([v["exact_memorization"] for v in memo], dtype=np.float64)
        es = np.array([v["extraction_strength"] for v in memo], dtype=np.float64)
        return MuseResult(generations, scores, em, es, self.attacks, info={"settings": self.settings})
