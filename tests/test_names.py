"""The shared names of unlearn.names: spelled once here, matching the loss registry, importable without torch."""

import math
import subprocess
import sys

import pytest

from unlearn.names import (
    BETA_LOSSES,
    FLUENCY_KEYS,
    FORGET_QUALITY,
    LOSS_NAMES,
    MODEL_UTILITY,
    SELECTION_RULES,
    SUMMARY_KEYS,
    format_number,
    metric_key,
)


def test_metric_keys_are_the_logged_and_stored_names():
    # These strings are a file format (summary.json, eval.json, TensorBoard tags): the only test spelling them.
    assert (FORGET_QUALITY, MODEL_UTILITY) == ("forget/forget_quality", "utility/model_utility")
    assert metric_key("forget", "rouge_l") == "forget/rouge_l"
    assert metric_key("real_authors", "truth_ratio") == "utility/real_authors_truth_ratio"
    assert len(SUMMARY_KEYS) == len(set(SUMMARY_KEYS)) == 14 and SUMMARY_KEYS[:2] == (FORGET_QUALITY, MODEL_UTILITY)
    assert FLUENCY_KEYS[:3] == ("forget/distinct_2", "forget/repetition", "forget/short_answers")
    assert len(FLUENCY_KEYS) == 12
    assert SELECTION_RULES == ("forget_quality", "model_utility", "last")


def test_loss_names_match_the_registry_and_its_hyperparameters():
    from unlearn.losses import LOSSES

    assert LOSS_NAMES == tuple(LOSSES)
    assert BETA_LOSSES == tuple(name for name, cls in LOSSES.items() if "beta" in cls.hparam_names())


def test_the_light_modules_import_without_torch():
    code = ("import sys, unlearn.names, unlearn.reporting.compare, unlearn.experiments.sweep; "
            "print(sorted(m for m in ('torch', 'lightning', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("value, digits, expected", [
    (None, ".3f", "n/a"),
    (math.nan, ".3f", "nan"),
    (-math.inf, "g", "-inf"),
    (0.5, ".3f", "0.500"),
    (0.0, ".3f", "0.000"),
    (0.00123, ".3f", "0.001"),
    (1e-5, ".3f", "1e-05"),  # a fixed format would show 0.000
    (-2e-4, ".3f", "-0.0002"),
    (0.9, ".2f", "0.90"),
    (0.007, "g", "0.007"),
    (0.5, "g", "0.5"),
    (1.23456e-7, "g", "1.23e-07"),
])
def test_format_number(value, digits, expected):
    assert format_number(value, digits) == expected
