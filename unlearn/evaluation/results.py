"""What one evaluation produces: per-question values of each split, the split figures, and the summary.

Per-question values are kept (not only means) so that a retain model's forget-split truth ratios
can be stored once and reused for forget quality, and so that a surprising mean can be traced to
the questions behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unlearn.evaluation import metrics
from unlearn.evaluation.fluency import fluency
from unlearn.evaluation.membership import MembershipScores
from unlearn.names import (
    BENCHMARKS,
    FIGURES,
    FLUENCY_KEYS,
    FORGET_QUALITY,
    MODEL_UTILITY,
    SPLITS,
    SUMMARY_KEYS,
    format_number,
    metric_key,
)

UTILITY_SPLITS = ("retain", "real_authors", "world_facts")
AUTHOR_SPLITS = ("forget", "retain")  # truth-ratio base: the paraphrased answer
SPLIT_TITLES = {"forget": "Forget", "retain": "Retain", "real_authors": "Real authors", "world_facts": "World facts"}
FIGURE_TITLES = {"probability": "probability", "rouge_l": "ROUGE-L", "truth_ratio": "truth ratio"}
# SPLITS, FIGURES, metric_key, SUMMARY_KEYS and FLUENCY_KEYS live in unlearn.names (torch-free) and are
# re-exported here for the evaluation's users.
__all__ = ["AUTHOR_SPLITS", "FIGURES", "FIGURE_TITLES", "FLUENCY_KEYS", "SPLITS", "SPLIT_TITLES", "SUMMARY_KEYS",
           "UTILITY_SPLITS", "EvalResult", "SplitResult", "format_table", "metric_key"]


@dataclass
class SplitResult:
    """Per-question values of one split, ordered by row number in the split's file.

    Attributes:
        name: One of :data:`SPLITS`.
        index: Row numbers.
        question, answer, generation: Texts; ``generation`` is the model's greedy answer.
        answer_nll, base_nll: ``(N,)`` per-token NLL of the true and of the truth-ratio base answer.
        perturbed_nll: ``(N, K)`` per-token NLL of the perturbed answers (``NaN`` pads short rows).
        rouge_l: ``(N,)`` ROUGE-L recall of ``generation`` against ``answer``.
    """

    name: str
    index: np.ndarray
    question: list[str]
    answer: list[str]
    generation: list[str]
    answer_nll: np.ndarray
    base_nll: np.ndarray
    perturbed_nll: np.ndarray
    rouge_l: np.ndarray

    @property
    def probability(self) -> np.ndarray:
        """Per question: ``exp(−NLLbar)`` on author splits, normalised over the perturbed answers otherwise."""
        if self.name in AUTHOR_SPLITS:
            return metrics.probability(self.answer_nll)
        return metrics.normalized_probability(self.answer_nll, self.perturbed_nll)

    @property
    def truth_ratio(self) -> np.ndarray:
        """Per question ``R_i`` (docs/definitions.md, "TOFU metrics"), before the split's min/max reduction."""
        return metrics.truth_ratio(self.base_nll, self.perturbed_nll)

    def figures(self) -> dict[str, float]:
        """The split's three reported numbers."""
        reduce = metrics.forget_truth_ratio if self.name == "forget" else metrics.utility_truth_ratio
        return {"probability": float(np.mean(self.probability)), "rouge_l": float(np.mean(self.rouge_l)),
                "truth_ratio": reduce(self.truth_ratio)}

    def to_dict(self) -> dict:
        return {"index": self.index.tolist(), "question": self.question, "answer": self.answer,
                "generation": self.generation, "probability": self.probability.tolist(),
                "rouge_l": self.rouge_l.tolist(), "truth_ratio": self.truth_ratio.tolist(),
                "answer_nll": self.answer_nll.tolist(), "base_nll": self.base_nll.tolist(),
                "perturbed_nll": self.perturbed_nll.tolist()}

    @classmethod
    def from_dict(cls, name: str, data: dict) -> SplitResult:
        return cls(name, np.asarray(data["index"], dtype=np.int64), list(data["question"]), list(data["answer"]),
                   list(data["generation"]), np.asarray(data["answer_nll"], dtype=np.float64),
                   np.asarray(data["base_nll"], dtype=np.float64),
                   np.asarray(data["perturbed_nll"], dtype=np.float64).reshape(len(data["index"]), -1),
                   np.asarray(data["rouge_l"], dtype=np.float64))


@dataclass
class EvalResult:
    """One model's results on the four splits, with forget quality against a retain model when known."""

    BENCHMARK = "tofu"  # its keys: unlearn.names.BENCHMARKS["tofu"]

    splits: dict[str, SplitResult]
    forget_quality: float | None = None
    forget_quality_reason: str | None = "not compared with a retain model yet"
    info: dict = field(default_factory=dict)  # model path, settings: written next to the numbers
    # Membership inference (forget vs holdout answers) and memorisation; None when eval.mia_attacks is off.
    membership: MembershipScores | None = None

    def compare_with_retain(self, retain: EvalResult | None) -> EvalResult:
        """Set forget quality from the retain model's forget-split truth ratios, and the reference attack from its
        per-text losses (in place; returns self)."""
        retain_ratios = None if retain is None else retain.splits["forget"].truth_ratio
        self.forget_quality, self.forget_quality_reason = metrics.forget_quality(
            self.splits["forget"].truth_ratio, retain_ratios)
        if self.membership is not None:
            self.membership.compare_with_retain(None if retain is None else retain.membership)
        return self

    def unavailable(self) -> list[str]:
        """What could not be computed, and why (forget quality without a retain model is said apart)."""
        return [] if self.membership is None else self.membership.unavailable()

    @property
    def model_utility(self) -> float:
        figures = {name: self.splits[name].figures() for name in UTILITY_SPLITS}
        return metrics.model_utility([figures[split][figure] for split in UTILITY_SPLITS for figure in FIGURES])

    def summary(self) -> dict[str, float | None]:
        """The 14 numbers, keyed as logged: ``forget/forget_quality``, ``utility/model_utility``, then 12 figures;
        then the membership-inference AUCs (``privacy/mia_*``) and memorisation, when computed."""
        out = {FORGET_QUALITY: self.forget_quality, MODEL_UTILITY: self.model_utility}
        for split in SPLITS:
            for figure, value in self.splits[split].figures().items():
                out[metric_key(split, figure)] = value
        if self.membership is not None:
            out.update(self.membership.summary())
        return out

    def fluency(self) -> dict[str, float]:
        """Distinct-2, repetition and short-answer rates of each split's generations, keyed as :data:`FLUENCY_KEYS`."""
        return {metric_key(split, figure): value for split in SPLITS
                for figure, value in fluency(self.splits[split].generation).items()}

    def samples(self) -> dict[str, list[tuple[str, str, str]]]:
        """(question, true answer, generation) of the forget and retain splits, for TensorBoard and reports."""
        return {name: list(zip(self.splits[name].question, self.splits[name].answer, self.splits[name].generation))
                for name in ("forget", "retain")}

    def to_dict(self) -> dict:
        return {"benchmark": self.BENCHMARK, "summary": self.summary(), "fluency": self.fluency(),
                "forget_quality_reason": self.forget_quality_reason, "info": self.info,
                "per_question": {name: split.to_dict() for name, split in self.splits.items()},
                "membership": None if self.membership is None else self.membership.to_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> EvalResult:
        splits = {name: SplitResult.from_dict(name, values) for name, values in data["per_question"].items()}
        membership = data.get("membership")
        return cls(splits, data["summary"][FORGET_QUALITY], data.get("forget_quality_reason"), data.get("info", {}),
                   None if membership is None else MembershipScores.from_dict(membership))


def format_table(columns: dict[str, dict[str, float | None]], benchmark: str = "tofu") -> str:
    """A markdown table: one row per summary key, one column per model (``{"target": summary, ...}``).

    Rows follow :data:`unlearn.names.BENCHMARKS` ``[benchmark].rows``; a row no column has (e.g.
    membership inference on a benchmark without holdout texts) is left out.
    """
    names = list(columns)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for title, key in BENCHMARKS[benchmark].rows:
        if not any(key in columns[name] for name in names):
            continue
        lines.append(f"| {title} | " + " | ".join(format_number(columns[name].get(key)) for name in names) + " |")
    return "\n".join(lines)
