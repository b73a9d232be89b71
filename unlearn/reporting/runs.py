"""Reading finished ``fit`` runs for ``compare`` and the sweep: the summary, its benchmark, its chosen epochs.

A run folder's ``summary.json`` keeps each evaluated epoch's numbers (``evaluation.history``) under the
keys of the run's benchmark (``evaluation.benchmark``, :data:`unlearn.names.BENCHMARKS`; runs written
before it was recorded are TOFU runs). Torch-free.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from unlearn.errors import UnlearnError
from unlearn.identity import stable_json
from unlearn.names import BENCHMARKS, BenchmarkKeys
from unlearn.reporting.robustness import read_robustness

TOFU = BENCHMARKS["tofu"]


class NotARunError(UnlearnError, FileNotFoundError):
    """A folder given to ``compare`` that does not hold a finished, evaluated ``fit`` run."""


class MixedBenchmarksError(UnlearnError, ValueError):
    """Runs of different benchmarks given to one ``compare``: their numbers measure different things."""

    exit_code = 2


def run_benchmark(summary: dict) -> BenchmarkKeys:
    """The benchmark a run was evaluated on (``evaluation.benchmark``; runs from before it was recorded: TOFU)."""
    name = (summary.get("evaluation") or {}).get("benchmark") or "tofu"
    if name not in BENCHMARKS:
        raise NotARunError(f"{summary.get('run_dir', 'a run')} was evaluated on an unknown benchmark {name!r}; "
                           f"compare reads {', '.join(BENCHMARKS)}.")
    return BENCHMARKS[name]


def load_run(run_dir: str | Path) -> dict:
    """A finished run's summary, with its evaluation history and, if it was attacked, ``robustness``
    (:func:`unlearn.reporting.robustness.read_robustness`).

    Raises:
        NotARunError: no such folder, no ``summary.json`` (not a run, or not finished), a run without
            evaluation (``eval.enabled=false``), an unknown benchmark, or an unreadable ``attack.json``.
    """
    run_dir = Path(run_dir)
    path = run_dir / "summary.json"
    if not run_dir.is_dir():
        raise NotARunError(f"{run_dir} is not a folder.")
    if not path.is_file():
        raise NotARunError(f"{run_dir} is not a finished run: it has no summary.json (fit writes it at the end "
                           f"of a run; give folders such as runs/npo_rt_forget10_...).")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise NotARunError(f"{path} is not valid JSON ({err}).") from err
    evaluation = summary.get("evaluation") if isinstance(summary, dict) else None
    if not evaluation or not evaluation.get("history"):
        raise NotARunError(f"{run_dir} has no evaluation history (it was run with eval.enabled=false); "
                           f"evaluate it with `python -m unlearn eval model.path={run_dir / 'model'}` instead.")
    run_benchmark(summary)
    try:
        robustness = read_robustness(run_dir, summary)
    except ValueError as err:
        raise NotARunError(str(err)) from err
    if robustness:
        summary["robustness"] = robustness
    return summary


def common_benchmark(runs: dict[str, dict | list[dict]]) -> BenchmarkKeys:
    """The one benchmark of ``{name: summary}`` (or ``{name: [summary per seed]}``).

    Raises:
        MixedBenchmarksError: the runs were evaluated on different benchmarks.
    """
    found: dict[str, list[str]] = {}
    for name, value in runs.items():
        for summary in value if isinstance(value, list) else [value]:
            names = found.setdefault(run_benchmark(summary).name, [])
            if name not in names:
                names.append(name)
    if len(found) > 1:
        listing = "; ".join(f"{benchmark}: {', '.join(names)}" for benchmark, names in found.items())
        raise MixedBenchmarksError(f"compare puts runs of one benchmark side by side, and these were evaluated on "
                                   f"{len(found)} ({listing}); nothing was written. Compare each benchmark's runs "
                                   f"in its own call, with its own --out.")
    return BENCHMARKS[next(iter(found), "tofu")]


def _record(history: list[dict], epoch: int | None) -> dict:
    return next((r for r in history if r["epoch"] == epoch), {})


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def selected_epoch(evaluation: dict) -> tuple[dict, float | None]:
    """The numbers of a run's selected epoch (its saved model), and its utility (the benchmark's) relative to
    epoch 0's."""
    utility = BENCHMARKS[evaluation.get("benchmark") or "tofu"].utility
    history = evaluation["history"]
    chosen = {**_record(history, evaluation["selected_epoch"]), **(evaluation.get("unlearned") or {})}
    start = history[0].get(utility)
    return chosen, chosen[utility] / start if chosen.get(utility) is not None and start else None


def best_within_utility(history: list[dict], floor: float, benchmark: BenchmarkKeys = TOFU) -> dict | None:
    """The evaluated epoch (after the start) that forgot best (:meth:`~unlearn.names.BenchmarkKeys.selection_score`:
    TOFU's highest forget quality, MUSE's PrivLeak closest to 0, the lowest forget accuracy) among those whose
    utility stayed at least ``floor`` × the starting utility; the earliest on ties; None if none did.

    A stricter utility constraint than the run's own selection (``eval.collapse_fraction``), for
    comparing the trade-off of methods that overshoot and then recover.
    """
    utility = benchmark.utility
    start = history[0].get(utility)
    if not _finite(start):
        return None
    scored = [(benchmark.selection_score(r), r) for r in history[1:]
              if _finite(r.get(utility)) and r[utility] >= floor * start]
    return max(((s, r) for s, r in scored if s is not None), key=lambda pair: pair[0], default=(None, None))[1]


def forget_split_of(summary: dict) -> str:
    """The run's forget split (TOFU, MUSE's ``forget_set``), or ""."""
    return summary.get("forget_split") or summary.get("forget_set") or ""


def models_of(summaries: list[dict]) -> dict[str, list[dict]]:
    """Per forget split, one run for each distinct target and retain model pair (seeds that train their own models
    have one each), preferring one that recorded the retain model's fluency. Runs share a pair when they name the
    same model paths or measured the same numbers for both models (a cache folder renamed between runs)."""
    pairs: list[tuple[set, list[dict]]] = []  # the keys each pair is known by, and its runs
    for summary in summaries:
        evaluation, split = summary["evaluation"], forget_split_of(summary)
        keys = {("paths", split, summary["target_model"], summary.get("retain_model"))} \
            if summary.get("target_model") else set()
        if evaluation.get("target"):
            keys.add(("numbers", split, stable_json(evaluation["target"]), stable_json(evaluation.get("retain"))))
        same = [i for i, (known, _) in enumerate(pairs) if known & keys]
        pairs = [*(pair for i, pair in enumerate(pairs) if i not in same),
                 (keys.union(*(pairs[i][0] for i in same)), [*(r for i in same for r in pairs[i][1]), summary])]
    splits: dict[str, list[dict]] = {}
    for _, runs in pairs:
        splits.setdefault(forget_split_of(runs[0]), []).append(
            next((r for r in runs if r["evaluation"].get("retain_fluency")), runs[0]))
    return splits
