"""The project's shared names: metric keys, selection rules, loss strategy names, and table numbers.

One place for the strings several parts of the project must spell alike (the evaluation that
writes a metric, the callbacks and reports that read it back, the experiment scripts that list the
strategies). This module imports nothing beyond the standard library, so the light parts
(``compare``, the figures, the sweep, config validation) use it without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# --- Metric keys: how every number of a TOFU evaluation is logged and stored ---------------------

SPLITS = ("forget", "retain", "real_authors", "world_facts")
FIGURES = ("probability", "rouge_l", "truth_ratio")  # each split's three reported numbers
FLUENCY_FIGURES = ("distinct_2", "repetition", "short_answers")  # fluency of a split's greedy generations


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


def is_fluency_key(key: str) -> bool:
    """Whether a record key is a fluency figure (``forget/distinct_2``, ``forget/verbmem_repetition``...)."""
    return key.rsplit("/", 1)[-1].endswith(FLUENCY_FIGURES)

# Membership inference and memorisation (docs/evaluation.md, "Privacy"): one ROC-AUC per attack, forget
# (members) against holdout texts the target never saw, and two memorisation figures on the forget answers.
MIA_ATTACKS = ("loss", "zlib", "min_k", "min_k_plus_plus", "reference", "gradnorm")


def mia_key(attack: str) -> str:
    """Key of an attack's AUC: ``privacy/mia_min_k``..."""
    return f"privacy/mia_{attack}"


EXACT_MEMORIZATION = "forget/exact_memorization"
EXTRACTION_STRENGTH = "forget/extraction_strength"
PRIVACY_KEYS = (*(mia_key(attack) for attack in MIA_ATTACKS), EXACT_MEMORIZATION, EXTRACTION_STRENGTH)

# MUSE's measures (Shi et al. 2024), as its code names them.
VERBMEM = "forget/verbmem"
KNOWMEM_FORGET = "forget/knowmem"
KNOWMEM_RETAIN = "utility/knowmem_retain"
PRIVLEAK = "privacy/privleak"

# WMDP-style multiple choice: accuracy on the hazardous (forget) domain and on general knowledge.
FORGET_ACCURACY = "forget/accuracy"
GENERAL_ACCURACY = "utility/general_accuracy"


@dataclass(frozen=True)
class BenchmarkKeys:
    """What the evaluation callbacks and reports read from a benchmark's records.

    Attributes:
        name: ``tofu`` (TOFU and the built-in TOFU-format benchmark), ``muse``, ``multiple_choice``.
        utility: The utility the collapse stop watches and selection protects (higher is better).
        forget: The benchmark's headline forget measure, drawn against utility.
        forget_goal: How ``forget`` reads: ``high`` (TOFU's forget quality: closer to the retain model)
            or ``low`` (accuracy, memorisation: less is more forgotten).
        selection: The record key ``eval.selection=forget_quality`` ranks epochs by.
        selection_goal: How ``selection`` reads: ``high``, ``low``, or ``zero`` (MUSE's PrivLeak: 0 is the
            retrained model and either sign is a gap, so epochs rank by closeness to 0, as TOFU's forget
            quality ranks by closeness to the retain model).
        rows: ``(title, key)`` of the summary table, in order.
    """

    name: str
    utility: str
    forget: str
    forget_goal: str
    selection: str
    selection_goal: str
    rows: tuple[tuple[str, str], ...]

    def selection_score(self, record: dict) -> float | None:
        """Higher is better forgotten; None when the record lacks the number (e.g. no retain model)."""
        value = record.get(self.selection)
        if value is None or not math.isfinite(value):
            return None
        return {"high": value, "low": -value, "zero": -abs(value)}[self.selection_goal]

    def tiebreak(self, record: dict) -> float:
        """Between epochs with the same selection score, the better headline forget measure wins (MUSE's PrivLeak
        saturates at -100 on a model that still remembers every forget text; VerbMem then tells the epochs apart).
        0 when the selection score is the headline measure itself."""
        value = record.get(self.forget)
        if self.selection == self.forget or value is None or not math.isfinite(value):
            return 0.0
        return value if self.forget_goal == "high" else -value


_TOFU_TITLES = {"forget": "Forget", "retain": "Retain", "real_authors": "Real authors", "world_facts": "World facts"}
_FIGURE_TITLES = {"probability": "probability", "rouge_l": "ROUGE-L", "truth_ratio": "truth ratio"}
_MIA_TITLES = {"loss": "LOSS", "zlib": "ZLib", "min_k": "Min-K%", "min_k_plus_plus": "Min-K%++",
               "reference": "reference", "gradnorm": "gradient norm"}
_PRIVACY_ROWS = (*((f"MIA AUC {_MIA_TITLES[a]}", mia_key(a)) for a in MIA_ATTACKS),
                 ("exact memorisation", EXACT_MEMORIZATION), ("extraction strength", EXTRACTION_STRENGTH))

BENCHMARKS = {
    "tofu": BenchmarkKeys(
        "tofu", MODEL_UTILITY, FORGET_QUALITY, "high", FORGET_QUALITY, "high",
        (("forget quality", FORGET_QUALITY), ("model utility", MODEL_UTILITY),
         *((f"{_TOFU_TITLES[s]} {_FIGURE_TITLES[f]}", metric_key(s, f)) for s in SPLITS for f in FIGURES),
         *_PRIVACY_ROWS)),
    "muse": BenchmarkKeys(
        "muse", KNOWMEM_RETAIN, VERBMEM, "low", PRIVLEAK, "zero",
        (("VerbMem (forget)", VERBMEM), ("KnowMem (forget)", KNOWMEM_FORGET), ("KnowMem (retain)", KNOWMEM_RETAIN),
         ("PrivLeak", PRIVLEAK), *_PRIVACY_ROWS)),
    "multiple_choice": BenchmarkKeys(
        "multiple_choice", GENERAL_ACCURACY, FORGET_ACCURACY, "low", FORGET_ACCURACY, "low",
        (("forget accuracy", FORGET_ACCURACY), ("general accuracy", GENERAL_ACCURACY))),
}

# --- Which evaluated epoch becomes a run's model (``eval.selection``) -----------------------------

SELECTION_RULES = ("forget_quality", "model_utility", "last")

# --- Unlearning loss strategies -------------------------------------------------------------------

# The keys of ``unlearn.losses.LOSSES``, in its order (checked when that registry is built).
LOSS_NAMES = ("ga", "grad_diff", "kl", "idk", "dpo", "npo", "npo_rt", "npo_kl", "simnpo", "undial", "wga", "satimp",
              "ce_u", "pdu", "rmu")
# The strategies whose hyperparameters include ``beta`` (also checked against the loss classes).
BETA_LOSSES = ("dpo", "npo", "npo_rt", "npo_kl", "simnpo", "undial", "wga")

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


def is_tofu_log(path) -> bool:
    """Whether a ``model.retain_path`` names a TOFU evaluation log of the retain model (a ``.json`` file) rather than
    the model (unlearn/evaluation/tofu_log.py reads it). Here, torch-free, for the config checks and the sweep."""
    return path is not None and str(path).endswith(".json")
