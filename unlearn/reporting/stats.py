"""Statistics over the seeds of one setting: mean ± sd, a bootstrap interval, and mean trajectories.

Used by ``compare`` (error bars for runs that differ only in their seed) and by the sweep's
``results.json`` / ``results.md`` (``unlearn.experiments.collect``). Torch-free.

What the interval is over: the seeds, the percentile bootstrap of the mean over the seeds' values: how
much a number moves when the run is repeated. How finely one run measures its own number, resampling its
questions, is :mod:`unlearn.reporting.question_ci`'s interval. With n seeds there are
at most C(2n-1, n) distinct resample means (10 for n = 3), so a few seeds give a coarse, optimistic
interval: read it beside n.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from unlearn.names import format_number

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0  # fixed: the same values always give the same interval
CI_LEVEL = 0.95
SEED_SUFFIX = re.compile(r"^(?P<base>.+)_seed(?P<seed>-?\d+)$")  # a sweep's run folders: <setting>_seed<N>


def finite(values: Iterable) -> list[float]:
    """The values that are finite numbers (None, NaN, infinities and non-numbers dropped)."""
    return [float(v) for v in values
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]


def mean_sd(values: Iterable) -> tuple[float | None, float | None, int]:
    """``(mean, sd, n)`` of the finite values; sd is the sample standard deviation (ddof = 1).

    ``sd`` is None with fewer than two values and ``mean`` None with none; equal values have sd 0 exactly (numpy
    leaves a rounding residue such as 1.4e-16 for three 0.8s, which a table would print).
    """
    xs = finite(values)
    if not xs:
        return None, None, 0
    sd = (0.0 if min(xs) == max(xs) else float(np.std(xs, ddof=1))) if len(xs) > 1 else None
    return float(np.mean(xs)), sd, len(xs)


def bootstrap_ci(values: Iterable, resamples: int = BOOTSTRAP_RESAMPLES, level: float = CI_LEVEL,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of the finite ``values``; None with fewer than two.

    ``resamples`` samples of n values drawn with replacement (``numpy.random.default_rng(seed)``),
    the mean of each, and the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those means
    (numpy's default linear interpolation). Efron & Tibshirani (1993), ch. 13.
    """
    xs = np.asarray(finite(values))
    if xs.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = xs[rng.integers(0, xs.size, size=(resamples, xs.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def describe(values: Sequence) -> dict:
    """``{"mean", "sd", "n", "ci", "values"}`` of one metric over seeds (``ci``: :func:`bootstrap_ci`)."""
    mean, sd, n = mean_sd(values)
    ci = bootstrap_ci(values)
    return {"mean": mean, "sd": sd, "n": n, "ci": list(ci) if ci else None, "values": list(values)}


def seed_groups(run_dirs: Sequence[str | Path]) -> dict[str, list[Path]]:
    """Run folders grouped by name without its ``_seed<N>`` suffix, in the order first seen.

    ``npo_forget10_seed1`` and ``npo_forget10_seed2`` form the group ``npo_forget10``; a folder
    without the suffix is a group of its own, under its own name.
    """
    groups: dict[str, list[Path]] = {}
    for run_dir in run_dirs:
        name = Path(run_dir).resolve().name
        match = SEED_SUFFIX.match(name)
        groups.setdefault(match["base"] if match else name, []).append(Path(run_dir))
    return groups


def mean_history(histories: Sequence[Sequence[dict]]) -> tuple[list[dict], list[dict]]:
    """Per evaluated epoch, the mean and the sd (ddof = 1) over runs of every numeric field.

    Epochs are matched by number; an epoch some runs did not reach (a collapse stop) averages the
    runs that did, and its ``n`` field says how many.
    """
    epochs = sorted({r["epoch"] for history in histories for r in history})
    means, sds = [], []
    for epoch in epochs:
        records = [r for history in histories for r in history if r["epoch"] == epoch]
        keys = dict.fromkeys(k for r in records for k in r)
        mean, sd = {"epoch": epoch, "n": len(records)}, {"epoch": epoch, "n": len(records)}
        for key in keys:
            if key == "epoch":
                continue
            m, s, n = mean_sd(r.get(key) for r in records)
            mean[key], sd[key] = m, s
        means.append(mean)
        sds.append(sd)
    return means, sds


def format_stat(stat: dict, digits: str = ".3f", ci: bool = True) -> str:
    """``mean ± sd [low, high]`` (``n/a`` without values; the bare value for one)."""
    if stat["mean"] is None:
        return "n/a"
    text = format_number(stat["mean"], digits)
    if stat["sd"] is not None:
        text += f" ± {format_number(stat['sd'], digits)}"
    if ci and stat.get("ci"):
        text += f" [{format_number(stat['ci'][0], digits)}, {format_number(stat['ci'][1], digits)}]"
    return text
