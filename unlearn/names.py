"""The project's shared names: metric keys, selection rules, loss strategy names, and table numbers.

One place for the strings several parts of the project must spell alike (the evaluation that
writes a metric, the callbacks and reports that read it back, the experiment scripts that list the
strategies). This module imports nothing beyond the standard library, so the light parts
(``compare``, the figures, the sweep, config validation) use it without loading torch.
"""

from __future__ import annotations

import math

# --- Metric keys: how every number of a TOFU evaluation is logged and stored ---------------------

SPLITS = ("forget", "retain", "real_authors", "world_facts")
FIGURES = ("probability", "rouge_l", "truth_ratio")  # each split's three reported numbers
FLUENCY_FIGURES = ("distinct_2", "repetition")  # fluency of a split's greedy generations


def metric_key(split: str, figure: str) -> str:
    """Namespaced key of a split figure: ``forget/probability``, ``utility/retain_rouge_l``..."""
    return f"forget/{figure}" if split == "forget" else f"utility/{split}_{figure}"


FORGET_QUALITY = "forget/forget_quality"
MODEL_UTILITY = "utility/model_utility"
# The 14 numbers of an evaluation summary, in the order they are reported.
SUMMARY_KEYS = (FORGET_QUALITY, MODEL_UTILITY,
                *(metric_key(split, figure) for split in SPLITS for figure in FIGURES))
# Fluency of the greedy generations (``forget/distinct_2``, ``utility/retain_repetition``...): reported
# beside the summary, never part of model utility.
FLUENCY_KEYS = tuple(metric_key(split, figure) for split in SPLITS for figure in FLUENCY_FIGURES)

# --- Which evaluated epoch becomes a run's model (``eval.selection``) -----------------------------

SELECTION_RULES = ("forget_quality", "model_utility", "last")

# --- Unlearning loss strategies -------------------------------------------------------------------

# The keys of ``unlearn.losses.LOSSES``, in its order (checked when that registry is built).
LOSS_NAMES = ("ga", "grad_diff", "kl", "idk", "dpo", "npo", "npo_rt", "npo_kl", "simnpo")
# The strategies whose hyperparameters include ``beta`` (also checked against the loss classes).
BETA_LOSSES = ("dpo", "npo", "npo_rt", "npo_kl", "simnpo")

# --- Numbers in tables ----------------------------------------------------------------------------


def format_number(value: float | None, digits: str = ".3f") -> str:
    """A number as a table shows it.

    None is ``"n/a"``; NaN and infinities print as Python writes them. ``digits="g"`` gives 3
    significant digits (for values spanning orders of magnitude, such as forget quality);
    any other format spec is used as is (default 3 decimals), except that a value with
    ``0 < |value| < 1e-3``, which a fixed format would show as zero, gets 3 significant digits.
    """
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return str(value)
    if digits == "g" or 0 < abs(value) < 1e-3:
        return f"{value:.3g}"
    return format(value, digits)


# A run folder's layout (docs/reliability.md): its one checkpoint, and the file fit writes last.
CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
SUMMARY_FILE = "summary.json"

# The TOFU benchmark on the Hugging Face hub (data.source=tofu without data.path).
TOFU_HUB_ID = "locuslab/TOFU"
