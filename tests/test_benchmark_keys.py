"""Each benchmark's utility and forget score drive the same callbacks: selection, collapse stop, tables."""

import pytest

from unlearn.callbacks.selection import BestEpochSelection, selection_key
from unlearn.evaluation.results import format_table
from unlearn.evaluation.tracking import setup_fit_evaluation
from unlearn.names import (BENCHMARKS, FORGET_ACCURACY, FORGET_QUALITY, GENERAL_ACCURACY, KNOWMEM_RETAIN,
                           MODEL_UTILITY, PRIVLEAK, VERBMEM, is_fluency_key, mia_key)

MUSE = BENCHMARKS["muse"]


def best(records, rule, threshold, benchmark):
    return max(records, key=lambda r: selection_key(r, rule, threshold, benchmark))["epoch"]


def test_muse_selection_ranks_by_privleak_closest_to_zero_among_epochs_that_keep_knowmem_retain():
    # Threshold 20: epoch 3 (PrivLeak 1, closest to 0) lost its utility; epoch 2's +5 beats epoch 1's -40.
    records = [{"epoch": 1, KNOWMEM_RETAIN: 40.0, PRIVLEAK: -40.0}, {"epoch": 2, KNOWMEM_RETAIN: 30.0, PRIVLEAK: 5.0},
               {"epoch": 3, KNOWMEM_RETAIN: 10.0, PRIVLEAK: 1.0}, {"epoch": 4, KNOWMEM_RETAIN: 35.0, PRIVLEAK: None}]
    assert best(records, "forget_quality", 20.0, MUSE) == 2
    assert best(records, "model_utility", 20.0, MUSE) == 1
    assert best(records, "forget_quality", 50.0, MUSE) == 1  # none eligible: the highest utility


def test_multiple_choice_selection_prefers_the_lowest_forget_accuracy():
    keys = BENCHMARKS["multiple_choice"]
    records = [{"epoch": 1, GENERAL_ACCURACY: 0.8, FORGET_ACCURACY: 0.6},
               {"epoch": 2, GENERAL_ACCURACY: 0.7, FORGET_ACCURACY: 0.3}]
    assert best(records, "forget_quality", 0.5, keys) == 2


def test_tofu_selection_is_unchanged():
    records = [{"epoch": 1, MODEL_UTILITY: 0.6, FORGET_QUALITY: 0.1}, {"epoch": 2, MODEL_UTILITY: 0.5, FORGET_QUALITY: 0.4}]
    assert best(records, "forget_quality", 0.4, BENCHMARKS["tofu"]) == 2


class Records:
    def __init__(self, records):
        self.records = records


def test_selection_reason_names_the_benchmarks_measures():
    evaluation = Records([{"epoch": 0, KNOWMEM_RETAIN: 50.0, PRIVLEAK: -90.0},
                          {"epoch": 1, KNOWMEM_RETAIN: 45.0, PRIVLEAK: -3.0}])
    selection = BestEpochSelection(evaluation, "forget_quality", 0.5, benchmark=MUSE)
    selection.selected = evaluation.records[1]
    assert "closest to 0 privleak" in selection.reason and "knowmem retain" in selection.reason


def test_fit_evaluation_watches_the_benchmarks_utility_and_needs_no_retain_model_for_accuracy(tmp_path):
    muse = setup_fit_evaluation(None, None, 1, 0, "forget_quality", 0.5, tmp_path, lambda *a: None, MUSE)
    assert muse.collapse.monitor == KNOWMEM_RETAIN
    assert muse.selection.rule == "last"  # PrivLeak needs the retain model's AUC
    choice = setup_fit_evaluation(None, None, 1, 0, "forget_quality", 0.5, tmp_path, lambda *a: None,
                                  BENCHMARKS["multiple_choice"])
    assert choice.selection.rule == "forget_quality" and choice.collapse.monitor == GENERAL_ACCURACY


def test_table_rows_follow_the_benchmark_and_skip_numbers_no_model_has():
    table = format_table({"target": {VERBMEM: 80.0, KNOWMEM_RETAIN: 50.0, PRIVLEAK: -99.0}, "retain": {}}, "muse")
    assert "| VerbMem (forget) | 80.000 | n/a |" in table and "| PrivLeak | -99.000 | n/a |" in table
    assert "MIA" not in table
    with_mia = format_table({"target": {mia_key("loss"): 0.9}}, "muse")
    assert "| MIA AUC LOSS | 0.900 |" in with_mia


@pytest.mark.parametrize("key, fluent", [("forget/distinct_2", True), ("utility/retain_repetition", True),
                                         ("forget/verbmem_distinct_2", True), (PRIVLEAK, False),
                                         (FORGET_QUALITY, False)])
def test_fluency_keys_are_told_apart_from_the_summary(key, fluent):
    assert is_fluency_key(key) is fluent


def test_muse_selection_breaks_a_saturated_privleak_tie_by_verbmem():
    """PrivLeak is -100 at every epoch of a model that still remembers: the epoch with the lower VerbMem wins."""
    records = [{"epoch": 1, KNOWMEM_RETAIN: 90.0, PRIVLEAK: -100.0, VERBMEM: 99.0},
               {"epoch": 2, KNOWMEM_RETAIN: 88.0, PRIVLEAK: -100.0, VERBMEM: 70.0}]
    assert best(records, "forget_quality", 45.0, MUSE) == 2
