"""Statistics over seeds (unlearn.reporting.stats): mean ± sd and the bootstrap interval on hand-worked values."""

import math

import pytest

from unlearn.reporting.stats import bootstrap_ci, describe, format_stat, mean_sd, seed_groups


def test_mean_and_sample_sd_drop_what_is_not_a_finite_number():
    # [1, 2, 3, 4]: mean 2.5, squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, sd = sqrt(5 / 3) (ddof = 1).
    assert mean_sd([1, 2, None, 3, math.nan, 4, True]) == pytest.approx((2.5, math.sqrt(5 / 3), 4))
    assert mean_sd([0.7]) == (0.7, None, 1)
    assert mean_sd([0.8, 0.8, 0.8])[1] == 0.0  # exactly: numpy's std leaves 1.4e-16, which a table would print
    assert mean_sd([None, math.inf]) == (None, None, 0)


def test_bootstrap_interval_on_hand_worked_distributions():
    # Two values: the resample means are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4; both tails exceed 2.5%.
    assert bootstrap_ci([0.0, 1.0]) == (0.0, 1.0)
    # Three values: each extreme mean (all three draws alike) has probability 1/27 > 2.5%: [min, max].
    assert bootstrap_ci([0.1, 0.2, 0.6]) == pytest.approx((0.1, 0.6))
    # [0, 0, 0, 1]: the resample mean is k/4 with k ~ Binomial(4, 1/4); P(k = 0) = 0.316, P(k >= 3) = 0.051 and
    # P(k = 4) = 0.004, so the 2.5% quantile is 0 and the 97.5% quantile 3/4.
    assert bootstrap_ci([0, 0, 0, 1]) == (0.0, 0.75)
    assert bootstrap_ci([3.0]) is None and bootstrap_ci([]) is None


def test_bootstrap_interval_is_fixed_and_near_the_normal_one_for_many_seeds():
    values = list(range(10))
    low, high = bootstrap_ci(values)
    assert (low, high) == bootstrap_ci(values)  # a fixed seed: the same interval every time
    # Normal approximation of the bootstrap: mean 4.5 ± 1.96 x (population sd 2.872 / sqrt(10)) = [2.72, 6.28].
    assert low == pytest.approx(2.72, abs=0.25) and high == pytest.approx(6.28, abs=0.25)
    assert bootstrap_ci(values, seed=1) != (low, high)
    assert bootstrap_ci(values, level=0.5)[1] < high


def test_describe_and_format_a_metric_over_seeds():
    stat = describe([0.1, 0.2, 0.6])
    assert stat["n"] == 3 and stat["values"] == [0.1, 0.2, 0.6] and stat["ci"] == pytest.approx([0.1, 0.6])
    assert format_stat(stat, "g") == "0.3 ± 0.265 [0.1, 0.6]"
    assert format_stat(stat, ".2f", ci=False) == "0.30 ± 0.26"
    assert format_stat(describe([0.5]), ".3f") == "0.500"
    assert format_stat(describe([None]), ".3f") == "n/a"


def test_seed_groups_join_folders_that_differ_only_in_their_seed(tmp_path):
    dirs = [tmp_path / n for n in ("npo_seed1", "ga", "npo_seed2", "npo_rt_seed1", "a_seedling")]
    groups = seed_groups(dirs)
    assert {k: [d.name for d in v] for k, v in groups.items()} == {
        "npo": ["npo_seed1", "npo_seed2"], "ga": ["ga"], "npo_rt": ["npo_rt_seed1"], "a_seedling": ["a_seedling"]}
