"""WMDP-style multiple-choice accuracy, scored as lm-evaluation-harness scores it, batched and sharded.

For each question the context is the harness's prompt and each choice's continuation is its letter,
``" A"``, ``" B"``, ... (:mod:`unlearn.data.wmdp`, which cites the harness's task files and
``TemplateLM._encode_pair``). A choice's score is the log-likelihood of its continuation tokens given
the context, summed (``HFLM._loglikelihood_tokens``, ``lm_eval/models/huggingface.py``: log-softmax of
the logits, the continuation tokens gathered and summed). The prediction is the highest-scoring choice
(``np.argmax``: the first on a tie) and accuracy is the share of questions predicted right
(``ConfigurableTask.process_results``, ``lm_eval/api/task.py``, output type ``multiple_choice``).

The WMDP and MMLU tasks list only ``acc`` (``metric_list`` of ``_default_template_yaml``), so only
accuracy is reported in that (``letters``) style: ``acc_norm`` divides each score by the length of the
choice *string*, 1 for every letter, so it would equal ``acc``. The ``cloze`` style (MMLU's
``mmlu_continuation`` tasks, which list no metrics and so get ``acc`` and ``acc_norm``,
``DEFAULT_METRIC_REGISTRY`` in ``lm_eval/api/registry.py``) scores the choices' own texts and reports
both. Scores are float32 whatever the model's dtype (the harness's log-softmax runs in the model's
dtype unless ``softmax_dtype`` is set): half precision can flip a near tie between two letters.

Every (question, choice) pair of a rank's questions is flattened into one list and scored by
:func:`unlearn.models.scoring.score_examples` in length-sorted batches (the choices of a question share
batches; no loop over questions runs the model). Questions are dealt to ranks as
:class:`~unlearn.evaluation.evaluator.TofuEvaluator` deals them (:func:`~unlearn.evaluation.evaluator.shard`),
and gathered by the same :class:`~unlearn.evaluation.ranks.PerQuestionValues` state, which carries each
row's index, so every rank gets the single-process result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from unlearn.data.wmdp import (
    choice_continuations,
    choice_prompt,
    choice_texts,
    tokenize_completion,
    validate_choice_rows,
)
from unlearn.evaluation.ranks import PerQuestionValues, shard
from unlearn.identity import short_hash, stable_json, tokenizer_fingerprint
from unlearn.models.scoring import score_examples
from unlearn.names import FORGET_ACCURACY, GENERAL_ACCURACY


def predictions(loglikelihoods: np.ndarray) -> np.ndarray:
    """Index of the highest log-likelihood per row of ``(N, K)``; ``NaN`` marks a choice a row lacks.

    Ties go to the first choice, as ``np.argmax`` does in the harness.
    """
    scores = np.where(np.isnan(loglikelihoods), -np.inf, loglikelihoods)
    return np.argmax(scores, axis=1)


def accuracy(loglikelihoods: np.ndarray, answers: np.ndarray) -> float:
    """Share of questions whose highest-log-likelihood choice is the answer (the harness's ``acc``)."""
    return float(np.mean(predictions(loglikelihoods) == np.asarray(answers)))


def normalized_accuracy(loglikelihoods: np.ndarray, lengths: np.ndarray, answers: np.ndarray) -> float:
    """The harness's ``acc_norm``: each score divided by its choice's length in characters (``len`` of
    ``doc_to_choice``'s string, without the delimiter), then :func:`accuracy`."""
    return accuracy(loglikelihoods / np.asarray(lengths, dtype=np.float64), answers)


def set_key(name: str) -> str:
    """Summary key of a set's accuracy: ``forget/accuracy``, ``forget/<x>_accuracy`` for ``forget_<x>``,
    ``utility/<name>_accuracy`` for every other set (``general`` -> ``utility/general_accuracy``)."""
    if name == "forget":
        return FORGET_ACCURACY
    if name.startswith("forget_"):
        return f"forget/{name[len('forget_'):]}_accuracy"
    return f"utility/{name}_accuracy"


@dataclass
class ChoiceSetResult:
    """Per-question values of one set, in row order.

    Attributes:
        loglikelihood: ``(N, K)`` float32 summed log-likelihood of each choice's continuation; ``NaN``
            pads rows with fewer than ``K`` choices.
    """

    name: str
    index: np.ndarray
    question: list[str]
    choices: list[list[str]]
    answer: np.ndarray
    loglikelihood: np.ndarray
    style: str = "letters"

    @property
    def predicted(self) -> np.ndarray:
        return predictions(self.loglikelihood)

    @property
    def accuracy(self) -> float:
        return accuracy(self.loglikelihood, self.answer)

    @property
    def normalized_accuracy(self) -> float:
        """``acc_norm``: equal to :attr:`accuracy` in the letters style (every letter is one character)."""
        lengths = np.full(self.loglikelihood.shape, np.nan)
        for row, choices in enumerate(self.choices):
            lengths[row, :len(choices)] = [len(text) for text in choice_texts({"choices": choices}, self.style)]
        return normalized_accuracy(self.loglikelihood, lengths, self.answer)

    @property
    def chance(self) -> float:
        """Expected accuracy of guessing: the mean of ``1 / number of choices``."""
        return float(np.mean([1.0 / len(c) for c in self.choices]))

    def to_dict(self) -> dict:
        return {"index": self.index.tolist(), "question": self.question, "choices": self.choices,
                "answer": self.answer.tolist(), "predicted": self.predicted.tolist(), "style": self.style,
                "loglikelihood": [[None if np.isnan(v) else float(v) for v in row] for row in self.loglikelihood]}

    @classmethod
    def from_dict(cls, name: str, data: dict) -> ChoiceSetResult:
        lls = np.array([[np.nan if v is None else v for v in row] for row in data["loglikelihood"]], dtype=np.float32)
        return cls(name, np.asarray(data["index"], dtype=np.int64), list(data["question"]),
                   [list(c) for c in data["choices"]], np.asarray(data["answer"], dtype=np.int64),
                   lls.reshape(len(data["index"]), -1), data.get("style", "letters"))


@dataclass
class MultipleChoiceResult:
    """One model's accuracy on each set; the protocol the evaluation callbacks and reports read."""

    BENCHMARK = "multiple_choice"
    UTILITY_KEY = GENERAL_ACCURACY
    FORGET_KEY = FORGET_ACCURACY

    sets: dict[str, ChoiceSetResult]
    info: dict = field(default_factory=dict)  # settings, chance per set, truncated examples

    def summary(self) -> dict[str, float | None]:
        """``forget/accuracy`` and ``utility/general_accuracy`` (None without a ``general`` set), then other sets;
        in the cloze style each set's ``acc_norm`` follows too (``forget/accuracy_norm``...)."""
        out: dict[str, float | None] = {self.FORGET_KEY: None, self.UTILITY_KEY: None}
        out.update({set_key(name): values.accuracy for name, values in self.sets.items()})
        out.update({set_key(name) + "_norm": values.normalized_accuracy
                    for name, values in self.sets.items() if values.style == "cloze"})
        return out

    def fluency(self) -> dict[str, float]:
        """Nothing: multiple choice generates no text."""
        return {}

    def unavailable(self) -> list[str]:
        """Nothing depends on a retain model or on gradients here."""
        return []

    def compare_with_retain(self, retain: MultipleChoiceResult | None) -> MultipleChoiceResult:
        """Nothing to compare (accuracy is read against chance, ``info["chance"]``); returns self."""
        return self

    def samples(self) -> dict[str, list[tuple[str, str, str]]]:
        """Per set, ``(question, true choice, chosen choice)`` of every question, in row order."""
        return {name: [(q, c[a], c[p]) for q, c, a, p in zip(v.question, v.choices, v.answer, v.predicted)]
                for name, v in self.sets.items()}

    def to_dict(self) -> dict:
        return {"benchmark": self.BENCHMARK, "summary": self.summary(), "fluency": {}, "info": self.info,
                "per_question": {name: values.to_dict() for name, values in self.sets.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> MultipleChoiceResult:
        return cls({name: ChoiceSetResult.from_dict(name, values) for name, values in data["per_question"].items()},
                   data.get("info", {}))


class MultipleChoiceEvaluator:
    """Computes :class:`MultipleChoiceResult` for a model; tokenises every question once, at construction.

    Args:
        tokenizer: The model's tokenizer (pad token set).
        sets: ``{"forget": rows, "general": rows, ...}``; rows ``{question, choices, answer[, subject]}``,
            checked by :func:`unlearn.data.wmdp.validate_choice_rows` (a malformed row raises its DataError).
        max_length: Cap on context + continuation tokens; longer contexts lose tokens on the left, as in the harness.
        batch_size: Sequences (question-choice pairs) per forward pass.
        style: ``letters`` (WMDP's and MMLU's template, the default) or ``cloze`` (MMLU's continuation variant:
            the choices' own texts are scored; see :func:`unlearn.data.wmdp.choice_prompt`).
    """

    def __init__(self, tokenizer, sets: dict[str, list[dict]], max_length: int = 512, batch_size: int = 32,
                 style: str = "letters"):
        if "forget" not in sets:
            raise ValueError(f"multiple-choice sets need a 'forget' set; got {sorted(sets)}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        sets = {name: validate_choice_rows(rows, f"the multiple-choice set '{name}'") for name, rows in sets.items()}
        self.tokenizer, self.sets, self.batch_size, self.style = tokenizer, sets, batch_size, style
        # Per question, one example per choice: the context's tokens masked, the continuation's labelled.
        self.examples = {name: [[tokenize_completion(tokenizer, choice_prompt(row, style), continuation, max_length)
                                 for continuation in choice_continuations(row, style)] for row in rows]
                         for name, rows in sets.items()}
        self.settings = {"benchmark": MultipleChoiceResult.BENCHMARK, "style": style, "max_length": max_length,
                         "rows": {name: len(rows) for name, rows in sets.items()},
                         "sets": short_hash(stable_json(sets)), "tokenizer": tokenizer_fingerprint(tokenizer),
                         "examples": short_hash({name: [[(e.input_ids, e.labels) for e in per_row] for per_row in rows]
                                                 for name, rows in self.examples.items()})}
        self.info = {"settings": self.settings,
                     "chance": {name: float(np.mean([1.0 / len(r["choices"]) for r in rows]))
                                for name, rows in sets.items()},
                     "truncated": {name: sum(e.truncated for per_row in rows for e in per_row)
                                   for name, rows in self.examples.items()}}

    @torch.no_grad()
    def __call__(self, model, rank: int | None = None, world_size: int | None = None,
                 gradients: bool = True) -> MultipleChoiceResult:
        """Evaluate ``model`` on every set; under DDP call it on every rank (it gathers).

        Args:
            rank, world_size: Default to the initialised process group, else ``0, 1``.
        """
        if rank is None or world_size is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank = torch.distributed.get_rank() if distributed else 0
            world_size = torch.distributed.get_world_size() if distributed else 1
        sets = {name: self._evaluate_set(model, name, rank, world_size) for name in self.sets}
        return MultipleChoiceResult(sets, info=dict(self.info))

    def _evaluate_set(self, model, name: str, rank: int, world_size: int) -> ChoiceSetResult:
        rows, examples = self.sets[name], self.examples[name]
        order = sorted(range(len(rows)), key=lambda i: sum(len(e.input_ids) for e in examples[i]))
        mine = shard(order, rank, world_size)
        flat = [example for i in mine for example in examples[i]]
        nll, _ = score_examples(model, flat, self.tokenizer.pad_token_id, self.batch_size)
        width = max(len(per_row) for per_row in examples)  # the same on every rank: cat needs equal widths
        scores = torch.full((len(mine), width), float("nan"), dtype=torch.float32)
        offset = 0
        for row, i in enumerate(mine):  # unflattening the scores, not running the model
            count = len(examples[i])
            scores[row, :count] = -nll[offset:offset + count]
            offset += count
        gathered = PerQuestionValues(fields=("loglikelihood",)).to(next(model.parameters()).device)
        gathered.update(torch.tensor(mine, dtype=torch.long), scores)
        values = gathered.compute()
        index, loglikelihood = values["index"].astype(np.int64), values["loglikelihood"]
        return ChoiceSetResult(name, index, [rows[i]["question"] for i in index],
                               [list(rows[i]["choices"]) for i in index],
                               np.array([rows[i]["answer"] for i in index], dtype=np.int64), loglikelihood, self.style)
