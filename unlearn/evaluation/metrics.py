"""TOFU's metrics as pure functions of per-question numbers (docs/definitions.md, "TOFU metrics").

Every function here takes per-question arrays and no model, so each formula can be checked by
hand. The inputs are per-token answer NLLs, ``NLLbar = NLL / |a|`` (see :mod:`unlearn.models.scoring`):

- ``answer_nll``: ``(N,)`` NLLbar of the true answer of each question;
- ``base_nll``: ``(N,)`` NLLbar of the truth-ratio base answer (``paraphrased_answer`` on the
  forget and retain splits, ``answer`` on real authors and world facts);
- ``perturbed_nll``: ``(N, K)`` NLLbar of the K perturbed answers, ``NaN`` where a question has
  fewer than K of them.

Formulas follow TOFU's ``aggregate_eval_stat.py`` and open-unlearning. Two places compute in the
log domain where the direct formula overflows; they agree with it wherever it is finite.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import special, stats


def probability(answer_nll: np.ndarray) -> np.ndarray:
    """Forget and retain splits: ``exp(−NLLbar(a_i))`` per question; the split's figure is the mean."""
    return np.exp(-np.asarray(answer_nll, dtype=np.float64))


def normalized_probability(answer_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """Real authors and world facts: ``p_i / (p_i + Σ_j p_ij)`` per question, ``p = exp(−NLLbar)``.

    Written as ``1 / (1 + Σ_j exp(NLLbar_i − NLLbar_ij))`` and evaluated with ``logsumexp``, so
    very unlikely answers (``p`` below float64's smallest number) give a number, not ``0/0``.
    Missing perturbed answers (``NaN``) count as ``p_ij = 0``.
    """
    answer_nll = np.asarray(answer_nll, dtype=np.float64)
    gaps = answer_nll[:, None] - np.asarray(perturbed_nll, dtype=np.float64)
    gaps = np.where(np.isnan(gaps) & ~np.isnan(answer_nll)[:, None], -np.inf, gaps)
    terms = np.concatenate([np.zeros_like(answer_nll)[:, None], gaps], axis=1)
    return np.exp(-special.logsumexp(terms, axis=1))


def truth_ratio(base_nll: np.ndarray, perturbed_nll: np.ndarray) -> np.ndarray:
    """``R_i = exp(mean_j NLLbar(perturbed_ij) − NLLbar(base_i))`` per question.

    ``R_i > 1`` when the model prefers the base answer to the (geometric mean of the) perturbed
    ones. Missing perturbed answers (``NaN``) are left out of the mean.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN row gives NaN, which is the answer
        mean_perturbed = np.nanmean(np.asarray(perturbed_nll, dtype=np.float64), axis=1)
    with np.errstate(over="ignore"):
        return np.exp(mean_perturbed - np.asarray(base_nll, dtype=np.float64))


def forget_truth_ratio(ratios: np.ndarray) -> float:
    """Reported on the forget split: ``mean_i min(R_i, 1/R_i)`` (1 = no preference either way)."""
    ratios = np.asarray(ratios, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return float(np.mean(np.minimum(ratios, 1.0 / ratios)))


def utility_truth_ratio(ratios: np.ndarray) -> float:
    """Reported on retain, real authors, world facts: ``mean_i max(0, 1 − 1/R_i)``."""
    ratios = np.asarray(ratios, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return float(np.mean(np.maximum(0.0, 1.0 - 1.0 / ratios)))


@lru_cache(maxsize=2)
def rouge_l_scorer(stemmer: bool):
    """``rouge-score``'s ROUGE-L scorer (TOFU stems, MUSE does not), built once per setting."""
    from rouge_score import rouge_scorer

    # The scorer logs through the root logger, which quietly installs a root handler (logging's
    # implicit basicConfig) and prints every later log line of the program twice.
    root = logging.getLogger()
    handlers = list(root.handlers)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stemmer)
    root.handlers = handlers
    return scorer


def rouge_l_recall(generations: Sequence[str], answers: Sequence[str]) -> np.ndarray:
    """ROUGE-L recall of each generation against its true answer, stemming on (TOFU's ``eval_rouge_recall``)."""
    if len(generations) != len(answers):
        raise ValueError(f"{len(generations)} generations for {len(answers)} answers")
    scorer = rouge_l_scorer(stemmer=True)
    return np.array([scorer.score(target=answer, prediction=generation)["rougeL"].recall
                     for generation, answer in zip(generations, answers)], dtype=np.float64)


def forget_quality(ratios: np.ndarray, retain_ratios: np.ndarray | None) -> tuple[float | None, str | None]:
    """p-value of the two-sample KS test between forget-split truth ratios of a model and of the retain model.

    Args:
        ratios: Per-question ``R_i`` on the forget split of the model under test.
        retain_ratios: The same for the retain model, or ``None`` when no retain model was evaluated.

    Returns:
        ``(p_value, None)``, or ``(None, reason)`` when the number is undefined: a made-up value is
        never reported (docs/definitions.md, "TOFU metrics").
    """
    if retain_ratios is None:
        return None, ("no retain model results: forget quality compares against a model trained without "
                      "the forget set; give one with model.retain_path=...")
    ratios, retain_ratios = np.asarray(ratios, dtype=np.float64), np.asarray(retain_ratios, dtype=np.float64)
    if len(ratios) != len(retain_ratios):
        return None, (f"the retain model was evaluated on {len(retain_ratios)} forget questions and this model on "
                      f"{len(ratios)}; evaluate both with the same benchmark and eval.max_rows")
    if np.isnan(ratios).any() or np.isnan(retain_ratios).any():
        return None, "some truth ratios are NaN (the model's likelihoods are not finite)"
    return float(stats.ks_2samp(ratios, retain_ratios).pvalue), None


def model_utility(values: Sequence[float]) -> float:
    """Harmonic mean of the 9 utility numbers: {probability, ROUGE-L, truth ratio} × {retain, real authors, world facts}.

    Any zero makes it zero (a model that has lost one ability has no utility), any ``NaN`` makes it ``NaN``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (9,):
        raise ValueError(f"model utility is the harmonic mean of 9 numbers, got {values.shape[0]}")
    if np.isnan(values).any():
        return math.nan
    if (values <= 0).any():
        return 0.0
    return float(stats.hmean(values))
