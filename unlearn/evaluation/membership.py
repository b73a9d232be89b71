"""Membership inference and memorisation on a question/answer benchmark: forget answers against holdout ones.

The attacks of :mod:`unlearn.evaluation.mia` read one batched pass of per-token statistics
(:func:`unlearn.models.token_stats.token_stats`) over the forget split's true answers (members) and
the holdout split's (non-members: authors the target never saw), each scored after its question as
in training; GradNorm adds one backward pass per text. open-unlearning runs them the same way on
TOFU (``configs/eval/tofu_metrics/mia_*.yaml``: ``TOFU_QA_forget`` against ``TOFU_QA_holdout``),
and exact memorisation and extraction strength on the forget answers
(``configs/eval/tofu_metrics/{exact_memorization,extraction_strength}.yaml``).

Texts are dealt to ranks like the rest of the evaluation and their per-text scores gathered, so
every rank ends with what one process computes. Per-text scores are kept, not only AUCs: the
reference attack compares them with the retain model's, read from its stored result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from unlearn.data.formatting import TokenizedExample
from unlearn.evaluation.ranks import gather_objects, shard
from unlearn.evaluation.mia import attack_scores, gradnorm_scores, memorization, mia_auc, reference_scores, scored_text
from unlearn.models.token_stats import token_stats
from unlearn.names import EXACT_MEMORIZATION, EXTRACTION_STRENGTH, mia_key

NO_RETAIN = ("the reference attack needs the retain model's per-text losses; give the retain model itself (not a TOFU "
             "evaluation log) with model.retain_path=...")
SETS = ("member", "nonmember")


@dataclass
class MembershipScores:
    """Per-text scores of the forget (member) and holdout (non-member) texts, and memorisation per forget text.

    Attributes:
        member, nonmember: ``{attack: (N,)}`` scores, loss-like (higher = less likely a member), with
            ``loss`` always present (the reference attack reads it); empty without holdout texts.
        exact_memorization, extraction_strength: ``(N,)`` per forget answer.
        attacks: The attacks asked for (``eval.mia_attacks``).
        reasons: ``{attack: why it has no AUC}`` (no holdout texts, no retain model, a sharded model).
        reference: The reference attack's AUC once compared with a retain model.
    """

    member: dict[str, np.ndarray]
    nonmember: dict[str, np.ndarray]
    exact_memorization: np.ndarray
    extraction_strength: np.ndarray
    attacks: tuple[str, ...]
    reasons: dict[str, str] = field(default_factory=dict)
    reference: float | None = None

    def compare_with_retain(self, retain: MembershipScores | None) -> None:
        """Set the reference attack: this model's per-text LOSS minus the retain model's (in place)."""
        if "reference" not in self.attacks or not self.nonmember:
            return
        if retain is None or not retain.nonmember:
            self.reference, self.reasons["reference"] = None, NO_RETAIN
            return
        if {s: len(getattr(self, s)["loss"]) for s in SETS} != {s: len(getattr(retain, s)["loss"]) for s in SETS}:
            self.reference = None
            self.reasons["reference"] = "the retain model was scored on other texts; evaluate both the same way"
            return
        scores = {s: reference_scores(getattr(self, s)["loss"], getattr(retain, s)["loss"]) for s in SETS}
        self.reference = mia_auc(scores["member"], scores["nonmember"])
        self.reasons.pop("reference", None)

    def aucs(self) -> dict[str, float | None]:
        """``{attack: AUC}`` (open-unlearning's orientation: 1 = forget texts far likelier than holdout ones)."""
        out = {}
        for attack in self.attacks:
            if attack == "reference":
                out[attack] = self.reference
            elif attack in self.member and attack in self.nonmember:
                out[attack] = mia_auc(self.member[attack], self.nonmember[attack])
            else:
                out[attack] = None
        return out

    def summary(self) -> dict[str, float | None]:
        out = {mia_key(attack): auc for attack, auc in self.aucs().items()}
        em, es = self.exact_memorization, self.extraction_strength
        out[EXACT_MEMORIZATION] = float(np.nanmean(em)) if np.isfinite(em).any() else None
        out[EXTRACTION_STRENGTH] = float(np.mean(es)) if len(es) else None
        return out

    def unavailable(self) -> list[str]:
        """One line per attack without an AUC, saying why."""
        return [f"MIA {attack} is unavailable: {reason}" for attack, reason in self.reasons.items()]

    def to_dict(self) -> dict:
        return {"attacks": list(self.attacks), "reasons": self.reasons, "reference": self.reference,
                **{s: {k: v.tolist() for k, v in getattr(self, s).items()} for s in SETS},
                "exact_memorization": self.exact_memorization.tolist(),
                "extraction_strength": self.extraction_strength.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> MembershipScores:
        sets = {s: {k: np.asarray(v, dtype=np.float64) for k, v in data[s].items()} for s in SETS}
        return cls(sets["member"], sets["nonmember"], np.asarray(data["exact_memorization"], dtype=np.float64),
                   np.asarray(data["extraction_strength"], dtype=np.float64), tuple(data["attacks"]),
                   dict(data["reasons"]), data["reference"])


class MembershipProbe:
    """Scores a model's forget and holdout answers; tokenised once, at construction.

    Args:
        tokenizer: The model's tokenizer.
        member: The forget split's (question, true answer) examples.
        nonmember: The holdout split's, or None when the benchmark has no holdout texts (then only
            exact memorisation and extraction strength are computed).
        attacks: Attack names (:data:`unlearn.names.MIA_ATTACKS`).
        k: Min-K% and Min-K%++'s fraction.
        no_holdout_reason: Said for every attack when ``nonmember`` is None.
    """

    def __init__(self, tokenizer, member: list[TokenizedExample], nonmember: list[TokenizedExample] | None,
                 attacks: tuple[str, ...], k: float, batch_size: int, no_holdout_reason: str = ""):
        self.pad_token_id, self.attacks, self.k, self.batch_size = tokenizer.pad_token_id, tuple(attacks), k, batch_size
        self.examples = list(member) + list(nonmember or [])
        self.num_members, self.has_holdout = len(member), nonmember is not None
        self.no_holdout_reason = no_holdout_reason
        self.texts = [scored_text(tokenizer, e) for e in self.examples] if "zlib" in self.attacks else None

    def __call__(self, model, rank: int, world_size: int, gradients: bool = True, context=None) -> MembershipScores:
        """Score on every rank (each scores its share of the texts, then they gather)."""
        order = sorted(range(len(self.examples)), key=lambda i: len(self.examples[i].input_ids))
        mine = list(dict.fromkeys(shard(order, rank, world_size)))
        examples = [self.examples[i] for i in mine]
        stats = token_stats(model, examples, self.pad_token_id, self.batch_size, context,
                            vocab_stats="min_k_plus_plus" in self.attacks and self.has_holdout)
        texts = None if self.texts is None else [self.texts[i] for i in mine]
        scores = attack_scores(stats, self.k, texts, ("loss", *self.attacks)) if self.has_holdout else {}
        run_gradnorm = "gradnorm" in self.attacks and self.has_holdout and gradients
        if run_gradnorm:
            scores["gradnorm"] = gradnorm_scores(model, examples, context=context)
        em, es = memorization(stats)
        part = [(i, {name: float(values[j]) for name, values in scores.items()}, float(em[j]), float(es[j]))
                for j, i in enumerate(mine)]
        rows = {i: rest for i, *rest in gather_objects(part, world_size)}
        return self._assemble(rows, run_gradnorm)

    def _assemble(self, rows: dict[int, list], run_gradnorm: bool) -> MembershipScores:
        members = range(self.num_members)
        nonmembers = range(self.num_members, len(self.examples))
        names = rows[0][0].keys() if rows and self.has_holdout else ()
        member = {n: np.array([rows[i][0][n] for i in members]) for n in names}
        nonmember = {n: np.array([rows[i][0][n] for i in nonmembers]) for n in names}
        reasons = {}
        if not self.has_holdout:
            reasons = {attack: self.no_holdout_reason for attack in self.attacks}
        elif "gradnorm" in self.attacks and not run_gradnorm:
            reasons["gradnorm"] = "not computed while the weights are sharded (FSDP, DeepSpeed ZeRO-3)"
        em = np.array([rows[i][1] for i in members], dtype=np.float64)
        es = np.array([rows[i][2] for i in members], dtype=np.float64)
        return MembershipScores(member, nonmember, em, es, self.attacks, reasons)

