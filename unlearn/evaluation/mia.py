"""Membership-inference attacks, exact memorisation and extraction strength, from per-token statistics.

Every attack follows open-unlearning (``locuslab/open-unlearning``, ``src/evals/metrics/mia/``) and
reads the arrays of :class:`unlearn.models.token_stats.TokenStats`, so one batched forward pass feeds
them all (GradNorm, which needs a backward pass per text, is the exception).

**Orientation** (open-unlearning ``mia/__init__.py``'s note and ``mia/utils.py``, ``mia_auc``): every
score is signed like a loss, higher = less likely a member; the AUC labels members (forget texts) 0
and non-members (holdout texts) 1 and ranks by the score (``roc_auc_score(labels, scores)``), so
**AUC = 1 when the forget texts are far more likely than the holdout texts, 0.5 when the attack
cannot tell them apart**. (MUSE's PrivLeak AUC runs the other way; see
:mod:`unlearn.evaluation.muse_metrics`.)

**Token positions**: open-unlearning's ``tokenwise_logprobs`` / ``tokenwise_vocab_logprobs``
(``src/evals/metrics/utils.py``) drop the last scored token ("to ignore eos prediction"), and Min-K%,
Min-K%++, GradNorm, exact memorisation and extraction strength read those; LOSS, ZLib and the
reference attack read ``evaluate_probability``'s mean NLL over every scored token. Both are kept here.
"""

from __future__ import annotations

import zlib
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from unlearn.data.formatting import IGNORE_INDEX, TokenizedExample
from unlearn.models.modes import eval_mode
from unlearn.models.token_stats import TokenStats
from unlearn.names import MIA_ATTACKS

__all__ = ["MIA_ATTACKS", "attack_scores", "exact_memorization", "extraction_strength", "gradnorm_scores",
           "loss_score", "memorization", "mia_aucs", "min_k_plus_plus_score", "min_k_score", "reference_scores",
           "roc_auc", "scored_text", "zlib_score"]

GRADNORM_P = (1, 2, float("inf"))
SIGMA_FLOOR = 1e-3  # open-unlearning clamps the variance at 1e-6 before its square root


def _without_last(values: np.ndarray) -> np.ndarray:
    """The positions open-unlearning's ``tokenwise_logprobs`` keeps: every scored token but the last."""
    return values[:-1]


def loss_score(logprob: np.ndarray) -> float:
    """LOSS: mean NLL of every scored token (open-unlearning ``mia/loss.py``, ``evaluate_probability``)."""
    return float(-np.mean(logprob, dtype=np.float64)) if len(logprob) else float("nan")


def zlib_score(logprob: np.ndarray, text: str) -> float:
    """ZLib: the **mean** NLL divided by the zlib-compressed length in bytes of ``text``.

    open-unlearning ``mia/zlib.py``, ``ZLIBAttack.compute_score``: ``avg_loss / len(zlib.compress(text))``,
    where ``text`` is the decoded scored tokens (:func:`scored_text`), not the raw document.
    """
    return loss_score(logprob) / len(zlib.compress(text.encode("utf-8")))


def _min_k_mean(values: np.ndarray, k: float) -> float:
    """``−mean`` of the ``max(1, int(n·k))`` lowest values, 0 if none (open-unlearning ``MinKProbAttack``)."""
    if len(values) == 0:
        return 0.0
    count = max(1, int(len(values) * k))
    return float(-np.mean(np.sort(values)[:count], dtype=np.float64))


def min_k_score(logprob: np.ndarray, k: float) -> float:
    """Min-K%: ``−mean`` of the lowest K% token log-probs, last token left out (open-unlearning ``mia/min_k.py``)."""
    return _min_k_mean(_without_last(np.asarray(logprob, dtype=np.float32)), k)


def min_k_plus_plus_score(logprob: np.ndarray, mu: np.ndarray, sigma: np.ndarray, k: float) -> float:
    """Min-K%++: Min-K% of ``(log p(x_t) − μ_t) / σ_t`` (open-unlearning ``mia/min_k_plus_plus.py``).

    ``σ_t`` is floored at 1e-3, as open-unlearning clamps ``σ_t²`` at 1e-6.
    """
    z = (np.asarray(logprob, dtype=np.float32) - mu) / np.maximum(sigma, np.float32(SIGMA_FLOOR))
    return _min_k_mean(_without_last(z), k)


def reference_scores(target_loss: np.ndarray, reference_loss: np.ndarray) -> np.ndarray:
    """Reference attack: the target's LOSS score minus the reference model's (open-unlearning ``mia/reference.py``)."""
    return np.asarray(target_loss, dtype=np.float64) - np.asarray(reference_loss, dtype=np.float64)


def exact_memorization(greedy_match: np.ndarray) -> float:
    """EM: share of scored tokens (last left out) whose greedy prediction is the true token; NaN if none.

    open-unlearning ``src/evals/metrics/memorization.py``, ``exact_memorization`` (None there; the
    mean skips it, as ``np.nanmean`` skips NaN).
    """
    match = _without_last(np.asarray(greedy_match, dtype=bool))
    return float(match.mean()) if len(match) else float("nan")


def extraction_strength(greedy_match: np.ndarray) -> float:
    """ES: ``1 − k/n``, ``k`` the first position from which every greedy prediction is right.

    open-unlearning ``memorization.py``, ``extraction_strength``: over the ``n`` scored tokens (last left
    out), ``k`` runs from 0 to ``n − 1`` and stops at the first all-correct suffix; when none is, the
    loop ends at ``k = n − 1``, so **an answer with no correct suffix scores 1/n, not 0** (SPEC reads
    ``1 − k/|a|`` with ``k = |a|`` possible; the code wins). No scored token: 0.
    """
    match = _without_last(np.asarray(greedy_match, dtype=bool))
    n = len(match)
    if n == 0:
        return 0.0
    suffix_correct = np.flip(np.cumprod(np.flip(match))).astype(bool)  # all(match[k:]) for each k
    k = int(np.argmax(suffix_correct)) if suffix_correct.any() else n - 1
    return 1.0 - k / n


def memorization(stats: TokenStats) -> tuple[np.ndarray, np.ndarray]:
    """Per-example ``(exact_memorization, extraction_strength)``; report ``np.nanmean`` of each."""
    return (np.array([exact_memorization(m) for m in stats.greedy_match], dtype=np.float64),
            np.array([extraction_strength(m) for m in stats.greedy_match], dtype=np.float64))


def scored_text(tokenizer, example: TokenizedExample) -> str:
    """The scored tokens decoded without special tokens: the text ZLib compresses.

    open-unlearning ``extract_target_texts_from_processed_data``: ``decode(labels[labels != -100],
    skip_special_tokens=True)``.
    """
    return tokenizer.decode([t for t in example.labels if t != IGNORE_INDEX], skip_special_tokens=True)


def attack_scores(stats: TokenStats, k: float = 0.4, texts: list[str] | None = None,
                  attacks: tuple[str, ...] = MIA_ATTACKS) -> dict[str, np.ndarray]:
    """Per-example scores of the attacks in ``attacks`` that ``stats`` alone determine.

    ``loss`` and ``min_k`` always; ``zlib`` with ``texts``; ``min_k_plus_plus`` when ``stats`` has ``mu``.
    ``reference`` (:func:`reference_scores`) and ``gradnorm`` (:func:`gradnorm_scores`) need a second
    model or the model itself, so the caller adds them.
    """
    out = {}
    loss = np.array([loss_score(lp) for lp in stats.logprob], dtype=np.float64)
    if "loss" in attacks:
        out["loss"] = loss
    if "zlib" in attacks and texts is not None:
        out["zlib"] = np.array([zlib_score(lp, t) for lp, t in zip(stats.logprob, texts, strict=True)])
    if "min_k" in attacks:
        out["min_k"] = np.array([min_k_score(lp, k) for lp in stats.logprob], dtype=np.float64)
    if "min_k_plus_plus" in attacks and stats.mu is not None:
        out["min_k_plus_plus"] = np.array([min_k_plus_plus_score(lp, m, s, k)
                                           for lp, m, s in zip(stats.logprob, stats.mu, stats.sigma)])
    return out


def roc_auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """ROC-AUC of a score that should rank ``positives`` (label 1) above ``negatives`` (label 0).

    ``P(positive > negative) + ½ P(tie)`` via average ranks (Mann-Whitney), which is exactly the
    trapezoidal area of ``sklearn.metrics.roc_auc_score`` and of MUSE's ``auc(roc_curve(...))``
    (scikit-learn is not a dependency). NaN if any score is NaN (scikit-learn raises there).
    """
    negatives, positives = np.asarray(negatives, dtype=np.float64), np.asarray(positives, dtype=np.float64)
    if len(negatives) == 0 or len(positives) == 0:
        raise ValueError(f"an AUC needs both classes, got {len(negatives)} negatives and {len(positives)} positives")
    if np.isnan(negatives).any() or np.isnan(positives).any():
        return float("nan")
    ranks = rankdata(np.concatenate([negatives, positives]))
    n_pos, n_neg = len(positives), len(negatives)
    return float((ranks[n_neg:].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def mia_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """open-unlearning's MIA AUC: members labelled 0, non-members 1, loss-like scores (1 = members far likelier)."""
    return roc_auc(negatives=member_scores, positives=nonmember_scores)


def mia_aucs(member: TokenStats, nonmember: TokenStats, *, k: float = 0.4, attacks: tuple[str, ...] = MIA_ATTACKS,
             member_texts: list[str] | None = None, nonmember_texts: list[str] | None = None,
             reference_member: TokenStats | None = None, reference_nonmember: TokenStats | None = None,
             gradnorm: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, float | None]:
    """``{attack: AUC}`` for every attack in ``attacks``: None where its inputs are missing.

    Args:
        member, nonmember: Target-model statistics of the forget and of the holdout texts.
        k: Min-K% and Min-K%++'s fraction (MUSE and open-unlearning: 0.4).
        member_texts, nonmember_texts: :func:`scored_text` of each example (ZLib).
        reference_member, reference_nonmember: The reference (retain) model's statistics of the same texts.
        gradnorm: ``(member, nonmember)`` scores from :func:`gradnorm_scores`.
    """
    scores_m = attack_scores(member, k, member_texts, attacks)
    scores_n = attack_scores(nonmember, k, nonmember_texts, attacks)
    if "reference" in attacks and reference_member is not None and reference_nonmember is not None:
        def loss(stats):
            return attack_scores(stats, k, None, ("loss",))["loss"]
        scores_m["reference"] = reference_scores(loss(member), loss(reference_member))
        scores_n["reference"] = reference_scores(loss(nonmember), loss(reference_nonmember))
    if "gradnorm" in attacks and gradnorm is not None:
        scores_m["gradnorm"], scores_n["gradnorm"] = gradnorm
    return {attack: mia_auc(scores_m[attack], scores_n[attack]) if attack in scores_m else None for attack in attacks}


def gradnorm_scores(model, examples: list[TokenizedExample], p: float = 2, context=None) -> np.ndarray:
    """GradNorm: per example, the mean over parameter tensors of ``‖∇_θ loss‖_p``, one backward pass each.

    open-unlearning ``mia/gradnorm.py``, ``GradNormAttack`` (batch size 1; ``p = 2`` in its configs):
    ``loss = −mean`` of the scored tokens' log-probs (last left out), each parameter tensor's gradient
    p-norm, then their **mean** (not one global norm). Gradients are taken with ``torch.autograd.grad``
    with respect to every floating-point parameter (made to require grad for the call, then restored),
    so the model's ``.grad`` fields are left untouched, unlike open-unlearning, which zeroes them; the
    log-softmax is float32 and the model is in eval mode (open-unlearning: train mode, identical for
    Llama, which has no dropout). Must run outside ``torch.inference_mode`` and on an unsharded model.
    """
    if p not in GRADNORM_P:
        raise ValueError(f"GradNorm's p must be one of 1, 2, inf (open-unlearning's choices), got {p}")
    if torch.is_inference_mode_enabled():
        raise RuntimeError("GradNorm needs gradients; call gradnorm_scores outside torch.inference_mode()")
    params = [q for q in model.parameters() if q.is_floating_point()]
    before = [q.requires_grad for q in params]
    device = next(model.parameters()).device
    scores = np.empty(len(examples), dtype=np.float64)
    try:
        for q in params:
            q.requires_grad_(True)
        with eval_mode(model), torch.enable_grad():
            for i, example in enumerate(examples):
                ids = torch.tensor([example.input_ids], device=device)
                labels = torch.tensor(example.labels[1:], device=device)
                with context() if context else nullcontext():
                    logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, :-1]
                scored = labels != IGNORE_INDEX
                logprob = F.log_softmax(logits[scored].float(), dim=-1).gather(-1, labels[scored][:, None])
                loss = -logprob[:-1].mean()  # NaN with one scored token, as in open-unlearning
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                norms = [g.detach().float().norm(p) for g in grads if g is not None]
                scores[i] = torch.stack(norms).mean().item()
    finally:
        for q, flag in zip(params, before):
            q.requires_grad_(flag)
    return scores
