"""What one MUSE evaluation produces: per-example generations and per-text scores, and the summary.

Per-example values are kept (not only means) so that a retain model's result can be stored once and
reused: PrivLeak needs its forget-vs-holdout AUC, the reference attack its per-text losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unlearn.evaluation.fluency import fluency
from unlearn.evaluation.mia import mia_auc, reference_scores
from unlearn.evaluation.muse_metrics import NO_RETAIN, mean_score, privleak, privleak_auc, rouge_l_f1
from unlearn.names import (
    EXACT_MEMORIZATION,
    EXTRACTION_STRENGTH,
    KNOWMEM_FORGET,
    KNOWMEM_RETAIN,
    MIA_ATTACKS,
    PRIVLEAK,
    VERBMEM,
    mia_key,
)

MIN_K_AUC = "privacy/min_k_auc"  # MUSE's AUC behind PrivLeak (move to unlearn.names beside PRIVLEAK)
GENERATION_SETS = {"verbmem_forget": VERBMEM, "knowmem_forget": KNOWMEM_FORGET, "knowmem_retain": KNOWMEM_RETAIN}
PRIVLEAK_SPLITS = ("forget", "holdout")
MUSE_MIN_K = "muse_min_k"  # per-text score key of MUSE's Min-40% (PrivLeak)


@dataclass
class GenerationSet:
    """Greedy generations of one MUSE set and their ROUGE-L F1 (0-1).

    Attributes:
        prompt: VerbMem: the prompt text; KnowMem: the question (the in-context pairs are left out).
        truth: VerbMem: ``gt`` cut to MUSE's length; KnowMem: the answer.
        generation: What was scored: KnowMem's output cut at MUSE's stop words.
    """

    prompt: list[str]
    truth: list[str]
    generation: list[str]
    rouge_l: np.ndarray = None

    def __post_init__(self):
        self.rouge_l = rouge_l_f1(self.generation, self.truth) if self.rouge_l is None else np.asarray(self.rouge_l)

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "truth": self.truth, "generation": self.generation,
                "rouge_l": self.rouge_l.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> GenerationSet:
        return cls(list(data["prompt"]), list(data["truth"]), list(data["generation"]),
                   np.asarray(data["rouge_l"], dtype=np.float64))


@dataclass
class MuseResult:
    """One model's MUSE results; PrivLeak and the reference attack once compared with a retain model.

    Attributes:
        generations: :data:`GENERATION_SETS` names -> :class:`GenerationSet`.
        privleak_scores: ``{"forget": {score: (N,)}, "holdout": {...}}`` per privleak text: ``muse_min_k``
            (MUSE's Min-40%), ``loss`` (always: the reference attack needs it), and each attack run.
        exact_memorization, extraction_strength: Per VerbMem forget example (open-unlearning's MUSE configs).
        attacks: The attacks asked for (their AUCs are ``privacy/mia_<attack>``; ``reference`` is None until
            :meth:`compare_with_retain`).
    """

    BENCHMARK = "muse"  # its keys: unlearn.names.BENCHMARKS["muse"]
    UTILITY_KEY = KNOWMEM_RETAIN
    FORGET_KEY = VERBMEM

    generations: dict[str, GenerationSet]
    privleak_scores: dict[str, dict[str, np.ndarray]]
    exact_memorization: np.ndarray
    extraction_strength: np.ndarray
    attacks: tuple[str, ...] = MIA_ATTACKS
    privleak: float | None = None
    privleak_reason: str | None = "not compared with a retain model yet"
    mia_reference: float | None = None
    mia_reference_reason: str | None = "not compared with a retain model yet"
    info: dict = field(default_factory=dict)

    @property
    def min_k_auc(self) -> float:
        """MUSE's forget-vs-holdout AUC of Min-40% (MUSE's orientation: ~0 memorised, ~0.5 retrained)."""
        return privleak_auc(self.privleak_scores["forget"][MUSE_MIN_K], self.privleak_scores["holdout"][MUSE_MIN_K])

    def mia_aucs(self) -> dict[str, float | None]:
        """open-unlearning's AUC of each attack run (1 = forget texts far likelier than holdout)."""
        forget, holdout = self.privleak_scores["forget"], self.privleak_scores["holdout"]
        out = {}
        for attack in self.attacks:
            if attack == "reference":
                out[attack] = self.mia_reference
            else:
                out[attack] = mia_auc(forget[attack], holdout[attack]) if attack in forget else None
        return out

    def compare_with_retain(self, retain: MuseResult | None) -> MuseResult:
        """Set PrivLeak and the reference attack's AUC from a retain model's result (in place; returns self)."""
        if retain is None:
            self.privleak, self.privleak_reason = None, NO_RETAIN
            self.mia_reference, self.mia_reference_reason = None, NO_RETAIN
            return self
        sizes = {split: len(self.privleak_scores[split][MUSE_MIN_K]) for split in PRIVLEAK_SPLITS}
        retain_sizes = {split: len(retain.privleak_scores[split][MUSE_MIN_K]) for split in PRIVLEAK_SPLITS}
        if sizes != retain_sizes:
            reason = (f"the retain model was evaluated on {retain_sizes} privleak texts and this model on {sizes}; "
                      "evaluate both on the same MUSE sets")
            self.privleak, self.privleak_reason = None, reason
            self.mia_reference, self.mia_reference_reason = None, reason
            return self
        self.privleak, self.privleak_reason = privleak(self.min_k_auc, retain.min_k_auc)
        scores = {split: reference_scores(self.privleak_scores[split]["loss"], retain.privleak_scores[split]["loss"])
                  for split in PRIVLEAK_SPLITS}
        self.mia_reference, self.mia_reference_reason = mia_auc(scores["forget"], scores["holdout"]), None
        return self

    def unavailable(self) -> list[str]:
        """What could not be computed, and why."""
        lines = []
        if self.privleak is None and self.privleak_reason:
            lines.append(f"PrivLeak is unavailable: {self.privleak_reason}")
        if "reference" in self.attacks and self.mia_reference is None and self.mia_reference_reason:
            lines.append(f"MIA reference is unavailable: {self.mia_reference_reason}")
        if self.info.get("gradnorm_reason"):
            lines.append(f"MIA gradnorm is unavailable: {self.info['gradnorm_reason']}")
        return lines

    def summary(self) -> dict[str, float | None]:
        """MUSE's numbers (×100, as its code reports them), PrivLeak (%), the AUCs, EM and ES."""
        out = {key: mean_score(self.generations[name].rouge_l) for name, key in GENERATION_SETS.items()}
        out[PRIVLEAK] = self.privleak
        out[MIN_K_AUC] = self.min_k_auc
        out.update({mia_key(attack): auc for attack, auc in self.mia_aucs().items()})
        em, es = self.exact_memorization, self.extraction_strength
        out[EXACT_MEMORIZATION] = float(np.nanmean(em)) if np.isfinite(em).any() else None
        out[EXTRACTION_STRENGTH] = float(np.mean(es)) if len(es) else None
        return out

    def fluency(self) -> dict[str, float]:
        """Distinct-2, repetition and short answers of each set's generations: ``forget/verbmem_distinct_2``..."""
        return {f"{key}_{figure}": value for name, key in GENERATION_SETS.items()
                for figure, value in fluency(self.generations[name].generation).items()}

    def samples(self) -> dict[str, list[tuple[str, str, str]]]:
        """(prompt or question, truth, generation) per set, for TensorBoard and reports."""
        return {name: list(zip(g.prompt, g.truth, g.generation)) for name, g in self.generations.items()}

    def to_dict(self) -> dict:
        return {"benchmark": self.BENCHMARK, "summary": self.summary(), "fluency": self.fluency(),
                "privleak_reason": self.privleak_reason, "mia_reference_reason": self.mia_reference_reason,
                "attacks": list(self.attacks), "info": self.info,
                "per_example": {
                    "generations": {name: g.to_dict() for name, g in self.generations.items()},
                    "privleak": {split: {k: v.tolist() for k, v in scores.items()}
                                 for split, scores in self.privleak_scores.items()},
                    "exact_memorization": self.exact_memorization.tolist(),
                    "extraction_strength": self.extraction_strength.tolist()}}

    @classmethod
    def from_dict(cls, data: dict) -> MuseResult:
        per = data["per_example"]
        return cls({name: GenerationSet.from_dict(g) for name, g in per["generations"].items()},
                   {split: {k: np.asarray(v, dtype=np.float64) for k, v in scores.items()}
                    for split, scores in per["privleak"].items()},
                   np.asarray(per["exact_memorization"], dtype=np.float64),
                   np.asarray(per["extraction_strength"], dtype=np.float64),
                   tuple(data.get("attacks", MIA_ATTACKS)), data["summary"][PRIVLEAK], data.get("privleak_reason"),
                   data["summary"].get(mia_key("reference")), data.get("mia_reference_reason"), data.get("info", {}))
