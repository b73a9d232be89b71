"""Bootstrap intervals over questions for one run: how much its forget quality and model utility owe to
which questions happened to be asked.

The interval over seeds (:mod:`unlearn.reporting.stats`) says how much a number moves when the run is
repeated; this one says how precisely a single run's number is measured on its question set. TOFU's
forget quality is the p-value of a KS test between the forget split's per-question truth ratios of the
model and of the retain model, and model utility is the harmonic mean of nine per-split means, so both
can be recomputed on resampled questions:

- **forget quality**: the forget split's questions are drawn with replacement, the same draw for the
  model and the retain model (the two samples are paired by question), and the KS p-value recomputed;
- **model utility**: each utility split's questions are drawn with replacement, on its own, and its
  probability, ROUGE-L and truth ratio means recomputed (the splits are separate question sets).

``fit`` writes what they need, the selected epoch's per-question values and the retain model's, to
``<run>/eval_selected.json`` (:class:`unlearn.callbacks.selection.BestEpochSelection`). Percentile
intervals (Efron & Tibshirani 1993, ch. 13), 1000 resamples from a fixed seed, as over seeds. A KS
p-value on resampled questions with repeated values is a rough guide, not an exact test: read the
interval as the measurement's resolution on this many questions.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from unlearn.evaluation import metrics
from unlearn.names import FORGET_QUALITY, MODEL_UTILITY
from unlearn.reporting.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CI_LEVEL

log = logging.getLogger(__name__)

SELECTED_EVAL = "eval_selected.json"  # in the run folder, written by fit's selection
UTILITY_SPLITS = ("retain", "real_authors", "world_facts")  # unlearn.evaluation.results.UTILITY_SPLITS


def _quantiles(values: np.ndarray, level: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def forget_quality_interval(ratios, retain_ratios, resamples: int = BOOTSTRAP_RESAMPLES,
                            level: float = CI_LEVEL, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of forget quality over forget questions resampled in pairs.

    Args:
        ratios: The model's per-question forget truth ratios ``R_i``.
        retain_ratios: The retain model's, for the same questions in the same order.
    """
    ratios, retain_ratios = np.asarray(ratios, dtype=np.float64), np.asarray(retain_ratios, dtype=np.float64)
    if ratios.shape != retain_ratios.shape or ratios.ndim != 1 or ratios.size < 2:
        raise ValueError(f"forget quality's interval needs two equal-length lists of at least two truth ratios, "
                         f"got {ratios.shape} and {retain_ratios.shape}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, ratios.size, size=(resamples, ratios.size))
    values = np.array([metrics.forget_quality(ratios[d], retain_ratios[d])[0] for d in draws], dtype=np.float64)
    return _quantiles(values, level)


def model_utility_interval(splits: dict[str, dict], resamples: int = BOOTSTRAP_RESAMPLES,
                           level: float = CI_LEVEL, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of model utility, each utility split's questions resampled on their own.

    Args:
        splits: Per utility split, its per-question ``probability``, ``rouge_l`` and ``truth_ratio``
            (as :meth:`unlearn.evaluation.results.SplitResult.to_dict` writes them).
    """
    missing = [name for name in UTILITY_SPLITS if name not in splits]
    if missing:
        raise ValueError(f"model utility's interval needs the splits {', '.join(missing)}")
    rng = np.random.default_rng(seed)
    columns = {name: {key: np.asarray(splits[name][key], dtype=np.float64)
                      for key in ("probability", "rouge_l", "truth_ratio")} for name in UTILITY_SPLITS}
    draws = {name: rng.integers(0, len(c["probability"]), size=(resamples, len(c["probability"])))
             for name, c in columns.items()}
    values = np.empty(resamples)
    for i in range(resamples):
        nine = []
        for name in UTILITY_SPLITS:  # the order of results.EvalResult.model_utility: split, then figure
            c, d = columns[name], draws[name][i]
            nine += [np.mean(c["probability"][d]), np.mean(c["rouge_l"][d]),
                     metrics.utility_truth_ratio(c["truth_ratio"][d])]
        values[i] = metrics.model_utility(nine)
    return _quantiles(values, level)


def question_intervals(payload: dict) -> dict[str, dict]:
    """``{"forget quality": {"value", "ci": [low, high]}, "model utility": {...}}`` from an ``eval_selected.json``.

    Forget quality's interval needs the retain model's results in the payload; without them (no retain
    model) only model utility's is given. A benchmark other than TOFU has none.
    """
    result, retain = payload.get("result") or {}, payload.get("retain") or {}
    if result.get("benchmark") != "tofu":
        return {}
    per_question, summary = result["per_question"], result["summary"]
    out = {}
    if retain.get("benchmark") == "tofu":
        interval = forget_quality_interval(per_question["forget"]["truth_ratio"],
                                           retain["per_question"]["forget"]["truth_ratio"])
        out["forget quality"] = {"value": summary.get(FORGET_QUALITY), "ci": list(interval)}
    out["model utility"] = {"value": summary.get(MODEL_UTILITY), "ci": list(model_utility_interval(per_question))}
    return out


def read_selected_eval(run_dir: str | Path, selected_epoch) -> dict | None:
    """The run's ``eval_selected.json`` if it belongs to ``selected_epoch``, else None (absent, unreadable, or
    written for an epoch the run did not end up selecting, e.g. by a crash between the two writes)."""
    path = Path(run_dir) / SELECTED_EVAL
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) and payload.get("epoch") == selected_epoch else None


def run_intervals(run_dir: str | Path, selected_epoch) -> dict[str, dict]:
    """:func:`question_intervals` of a run folder's selected epoch; ``{}`` without a matching file, or with one
    that cannot be read as TOFU's per-question values (said in a warning: the run's own numbers still stand)."""
    payload = read_selected_eval(run_dir, selected_epoch)
    if payload is None:
        return {}
    try:
        return question_intervals(payload)
    except (KeyError, TypeError, ValueError) as err:
        log.warning("%s: no intervals over questions (%s)", Path(run_dir) / SELECTED_EVAL, err)
        return {}
