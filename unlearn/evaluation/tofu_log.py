"""A retain model's results read from a TOFU evaluation log instead of evaluating the model.

The NPO code never evaluates a retain model during unlearning: it compares each checkpoint with the stored log of
one (licong-lin/negative-preference-optimization, ``TOFU/dataloader.py``, ``CustomTrainerForgetting.evaluate``:
``retain_result = json.load(open(eval_cfg.retain_result))`` then ``utils.get_forget_quality``), and it ships those
logs for Llama-2-7b and Phi-1.5 retain models (``TOFU/data/retain90_llama_wd0.01/eval_results/ds_size300/
eval_log_aggregated.json`` and the like). TOFU released no retain models of ``locuslab/tofu_ft_llama2-7b``, so
these logs are how that model's forget quality can be measured as the paper measured it.

``model.retain_path=PATH/eval_log_aggregated.json`` takes such a log where a retain model would go. It is
TOFU's format (``locuslab/tofu``, ``evaluate_util.get_all_evals`` then the aggregation in ``evaluate``): one entry
per evaluation file, each a mapping of per-question values (lists in the NPO code's logs; mappings from the
question's index in TOFU's own, read in index order),

    eval_log_forget.json              the forget split        (forget)
    eval_log.json                     retain_perturbed         (retain)
    eval_real_author_wo_options.json  real_authors_perturbed   (real_authors)
    eval_real_world_wo_options.json   world_facts_perturbed    (world_facts)

with ``avg_gt_loss`` (the answer's per-token NLL), ``avg_paraphrased_loss`` (the truth ratio's base: the
paraphrased answer on the author splits, the answer itself on the other two), ``average_perturb_loss`` (per
question, each perturbed answer's per-token NLL), ``rougeL_recall`` and ``generated_text`` ([prompt,
generation, answer] triples). These are the arrays :class:`~unlearn.evaluation.results.SplitResult` holds, so the
log becomes an :class:`~unlearn.evaluation.results.EvalResult` and every number follows from it as from an
evaluation (forget quality: the KS test of ``utils.get_forget_quality``; model utility: ``utils.get_model_utility``).
All four entries are needed: the reports show the retain model's utility beside its forget quality.

The logs were written with ``ds_size: 300``: the first 300 rows of the forget and retain files (all 40 and 200 of
forget01 and forget05). Evaluate with ``eval.max_rows=300`` so the two sides score the same questions; with other
counts forget quality is reported as unavailable, with the counts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from unlearn.errors import DataError
from unlearn.names import is_tofu_log

__all__ = ["LOG_FILES", "is_tofu_log", "load_tofu_log"]

LOG_FILES = {"forget": "eval_log_forget.json", "retain": "eval_log.json",
             "real_authors": "eval_real_author_wo_options.json", "world_facts": "eval_real_world_wo_options.json"}
NEEDED = ("avg_gt_loss", "avg_paraphrased_loss", "average_perturb_loss")


def load_tofu_log(path: str | Path):
    """The retain model's :class:`~unlearn.evaluation.results.EvalResult` from the TOFU evaluation log at ``path``
    (compared with itself: forget quality 1).

    Raises:
        DataError: the file is missing, not JSON, or lacks the forget file's entry or its losses.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"model.retain_path={path}: no such file. A TOFU evaluation log of the retain model is the "
                        "eval_log_aggregated.json its evaluation wrote.")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"model.retain_path={path} is not a JSON file ({err}).") from err
    missing = [file for file in LOG_FILES.values() if not isinstance(data, dict) or file not in data]
    if missing:
        found = sorted(data)[:6] if isinstance(data, dict) else type(data).__name__
        raise DataError(f"model.retain_path={path} is not a TOFU evaluation log of all four files: it lacks "
                        f"{missing} (found {found}). Give the eval_log_aggregated.json of the retain model's evaluation.")
    from unlearn.evaluation.results import EvalResult

    splits = {name: _split(name, data[file], path) for name, file in LOG_FILES.items()}
    result = EvalResult(splits, info={"model": str(path), "from_log": True})
    return result.compare_with_retain(result)


def _per_question(values, key: str, where: str) -> list:
    """A log's per-question values as a list: the NPO code's logs hold lists, TOFU's own (``evaluate_util.py``)
    mappings from the question's index to its value, read here in index order."""
    if isinstance(values, dict):
        try:
            return [values[k] for k in sorted(values, key=int)]
        except ValueError:
            raise DataError(f"{where}: '{key}' maps {sorted(values)[:3]}... to values; TOFU keys them by the "
                            "question's index.") from None
    if not isinstance(values, list):
        raise DataError(f"{where}: '{key}' must be a list of per-question values, got {type(values).__name__}.")
    return values


def _split(name: str, log: dict, path: Path):
    from unlearn.evaluation.results import SplitResult

    where = f"model.retain_path={path}, {LOG_FILES[name]}"
    missing = [key for key in NEEDED if key not in log]
    if missing:
        raise DataError(f"{where}: the entry lacks {missing}; TOFU's evaluation writes {list(NEEDED)} for every file.")
    values = {key: _per_question(log[key], key, where) for key in (*NEEDED, "rougeL_recall", "generated_text")
              if key in log}
    n = len(values["avg_gt_loss"])
    uneven = {key: len(v) for key, v in values.items() if len(v) != n}
    if n == 0 or uneven:
        raise DataError(f"{where}: {n} questions in avg_gt_loss" + (f" but {uneven}" if uneven else "") +
                        "; every per-question list must have one value for each of the same questions.")
    texts = values.get("generated_text") or [["", "", ""]] * n
    try:
        perturbed = np.asarray(values["average_perturb_loss"], dtype=np.float64).reshape(n, -1)
        arrays = [np.asarray(values[k], dtype=np.float64) for k in ("avg_gt_loss", "avg_paraphrased_loss")]
        rouge = np.asarray(values.get("rougeL_recall", [np.nan] * n), dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: the losses are not numbers of one shape per question ({err}).") from err
    return SplitResult(name, np.arange(n), [str(t[0]) for t in texts], [str(t[2]) for t in texts],
                       [str(t[1]) for t in texts], arrays[0], arrays[1], perturbed, rouge)
