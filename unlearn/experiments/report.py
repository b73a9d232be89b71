"""What a sweep's ``results.md`` adds at its file's request: how many seeds the measured spread asks for, and
chosen settings' numbers epoch by epoch, each mean ± sd over the seeds.

    report:
      seeds_needed:                     # a collected number's title -> the difference to tell apart
        best FQ at MU ≥ 0.9×: 0.2
        model utility: 0.03
      history:                          # epoch by epoch, these groups' settings
        groups: [long]
        epochs: [0, 4, 8, 10, 20, 40]   # optional: every evaluated epoch
        metrics: [utility/model_utility, forget/distinct_2]   # optional: the benchmark's headline numbers

**Seeds needed.** For each number: the settings whose spread counts, their median and pooled sd (the root of the
mean variance), the smallest difference the sweep's seeds resolve, and the seeds per setting that would resolve
the file's difference. Both come from the two-sample comparison of means in the normal approximation at 80% power
and 5% two-sided error, ``n = 2 (z₀.₉₇₅ + z₀.₈)² sd² / Δ²`` (Cohen 1988, ch. 2; the difference resolved with n
seeds is ``(z₀.₉₇₅ + z₀.₈) sd √(2/n)``). A setting whose runs all collapsed (each stopped early, or ended with
less than half its starting utility, ``eval.collapse_fraction``'s default) is left out: its spread measures
where the collapse began, not how a repeat moves a working run.

**History.** Read from the finished runs' ``summary.json`` (``evaluation.history``), epochs matched by number
(:func:`unlearn.reporting.stats.mean_history`).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

from unlearn.experiments.runner import run_dir
from unlearn.experiments.runs import is_finished
from unlearn.experiments.sweep_file import Run, SweepFile, SweepFileError
from unlearn.names import format_number
from unlearn.errors import UnlearnError
from unlearn.reporting.runs import load_run
from unlearn.reporting.display import Display, display_of
from unlearn.reporting.stats import finite, mean_history

ALPHA, POWER = 0.05, 0.8
Z_SUM = statistics.NormalDist().inv_cdf(1 - ALPHA / 2) + statistics.NormalDist().inv_cdf(POWER)  # 1.96 + 0.84
COLLAPSED = 0.5  # a run that ends below this fraction of its starting utility has collapsed
REPORT_KEYS = {"seeds_needed", "history"}
HISTORY_KEYS = {"groups", "epochs", "metrics"}


def check_report(sweep: SweepFile) -> dict:
    """The file's ``report`` mapping, checked (empty without one)."""
    report = sweep.report or {}
    where = f"{sweep.path}: report"
    if not isinstance(report, dict) or set(report) - REPORT_KEYS:
        raise SweepFileError(f"{where} takes {sorted(REPORT_KEYS)}, got {report!r}.")
    needed = report.get("seeds_needed") or {}
    if not isinstance(needed, dict) or not all(_positive(v) for v in needed.values()):
        raise SweepFileError(f"{where}.seeds_needed maps a collected number's title to a positive difference "
                             f"(model utility: 0.03), got {needed!r}.")
    history = report.get("history") or {}
    if not isinstance(history, dict) or set(history) - HISTORY_KEYS or not history.get("groups") and history:
        raise SweepFileError(f"{where}.history takes groups (a list) and optionally epochs and metrics, "
                             f"got {history!r}.")
    for key, kind in (("groups", str), ("epochs", int), ("metrics", str)):
        value = history.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, kind) for v in value)):
            raise SweepFileError(f"{where}.history.{key} must be a list of {kind.__name__} values, got {value!r}.")
    unknown = set(history.get("groups") or ()) - set(sweep.groups)
    if unknown:
        raise SweepFileError(f"{where}.history names group(s) {sorted(unknown)}; the file has {sorted(sweep.groups)}.")
    return report


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def seeds_for(sd: float, difference: float) -> int:
    """Seeds per setting to tell apart two settings whose means differ by ``difference`` when each has ``sd``."""
    return max(2, math.ceil(2 * Z_SUM ** 2 * sd ** 2 / difference ** 2))


def resolved_difference(sd: float, n: int) -> float:
    """The difference between two settings' means that ``n`` seeds each resolve when each has ``sd``."""
    return Z_SUM * sd * math.sqrt(2 / n)


def collapsed(point: dict, shown: Display) -> bool:
    """Whether every collected run of the setting stopped early or ended below half its starting utility."""
    utility, metrics = shown.utility.title, point["metrics"]
    stopped = (metrics.get("stopped early") or {}).get("values") or []
    last = (metrics.get(f"last {utility}") or {}).get("values") or []
    start = (metrics.get(f"target {utility}") or {}).get("values") or []
    if not stopped or not len(stopped) == len(last) == len(start):
        return False
    return all(s == 1 or (e is not None and b and e < COLLAPSED * b) for s, e, b in zip(stopped, last, start))


def seeds_table(points: list[dict], needed: dict, shown: Display) -> list[str]:
    """The "seeds needed" section: one row per number the file names (empty when it names none)."""
    if not needed:
        return []
    # Each setting in the words of its own benchmark (a sweep may mix them).
    down = {p["point"]: collapsed(p, display_of(p["benchmark"]) if p.get("benchmark") else shown) for p in points}
    kept = [p for p in points if p["n"] and not down[p["point"]]]
    left_out = [p["point"] for p in points if p["n"] and down[p["point"]]]
    lines = ["| number | settings | median sd | pooled sd | resolved with n seeds | seeds to resolve … |",
             "|---|---:|---:|---:|---:|---|"]
    for title, difference in needed.items():
        spread = [p["metrics"][title] for p in kept if (p["metrics"].get(title) or {}).get("sd") is not None]
        if not spread:
            lines.append(f"| {title} | 0 | | | | no setting has two runs with this number |")
            continue
        sds = [m["sd"] for m in spread]
        pooled, median = math.sqrt(statistics.fmean(s * s for s in sds)), statistics.median(sds)
        n = round(statistics.median(m["n"] for m in spread))  # the seeds of the settings whose spread counts (≥ 2)
        lines.append(f"| {title} | {len(sds)} | {median:.3g} | {pooled:.3g} | "
                     f"{resolved_difference(pooled, n):.3g} (n = {n}) | "
                     f"{difference:g}: {seeds_for(pooled, difference)} ({seeds_for(median, difference)} at the "
                     f"median sd) |")
    note = (f"Left out, collapsed on every seed: {', '.join(left_out)}. " if left_out else "")
    return ["## Seeds needed", "", *lines, "", note + "Pooled sd: the root of the settings' mean variance. "
            f"Normal approximation, {POWER:.0%} power, {ALPHA:.0%} two-sided: n = 2 (z₀.₉₇₅ + z₀.₈)² sd² / Δ²; "
            "resolved with n seeds: (z₀.₉₇₅ + z₀.₈) sd √(2/n) (unlearn/experiments/report.py).", ""]


def _measures(shown: Display, keys: list[str] | None) -> list[tuple[str, str, str]]:
    """``(title, record key, format)`` of each number the history shows."""
    known = {m.key: m for m in (shown.forget, shown.utility, *shown.before, *shown.after)}
    if not keys:
        return [(m.title, m.key, m.digits) for m in known.values()]
    return [(known[k].title, k, known[k].digits) if k in known else (k, k, ".3f") for k in keys]


def history_tables(runs: list[Run], out: Path, spec: dict, shown: Display) -> list[str]:
    """The "history" section: per setting of the named groups, its numbers epoch by epoch (mean ± sd)."""
    if not spec:
        return []
    lines = ["## Epoch by epoch", "", "Mean ± sd over each setting's finished runs, from their `summary.json` "
             "(`evaluation.history`); the step is the runs' mean; (n = k): a number only k of the runs have.", ""]
    measures = _measures(shown, spec.get("metrics"))
    for group in spec["groups"]:
        points = dict.fromkeys(r.point for r in runs if r.group == group)
        for point in points:
            folders = [run_dir(out, r) for r in runs if r.point == point and r.group == group]
            histories = [h for h in (_history(f) for f in folders if is_finished(f)) if h]
            if not histories:
                continue
            means, sds = mean_history(histories)
            chosen = [i for i, m in enumerate(means) if not spec.get("epochs") or m["epoch"] in spec["epochs"]]
            head = [f"{format_number(means[i].get('step'), '.0f')} ({means[i]['epoch']})" for i in chosen]
            lines += [f"### {group}: {point} ({len(histories)} runs)", "",
                      "| step (epoch) | " + " | ".join(head) + " |", "|---|" + "---:|" * len(chosen)]
            for title, key, digits in measures:
                cells = [_mean_sd(means[i].get(key), sds[i].get(key), digits)
                         + _fewer(histories, means[i]["epoch"], key) for i in chosen]
                lines.append(f"| {title} | " + " | ".join(cells) + " |")
            lines.append("")
    return lines


def _history(folder: Path) -> list[dict] | None:
    """A finished run's evaluation history; None for one collect_points could not collect either (it says why)."""
    try:
        return load_run(folder)["evaluation"]["history"]
    except UnlearnError:
        return None


def _fewer(histories: list[list[dict]], epoch: int, key: str) -> str:
    """`` (n = k)`` when only k of the setting's runs have this number at this epoch (a collapse stop, or a
    measure added after some runs finished), so a mean over fewer runs is not read as one over all."""
    n = len(finite(r.get(key) for h in histories for r in h if r["epoch"] == epoch))  # the values the mean took
    return f" (n = {n})" if 0 < n < len(histories) else ""


def _mean_sd(mean, sd, digits: str) -> str:
    if mean is None:
        return "n/a"
    return format_number(mean, digits) + ("" if sd is None else f" ± {format_number(sd, digits)}")


def report_sections(sweep: SweepFile, runs: list[Run], out: Path, points: list[dict], shown: Display) -> list[str]:
    """The sections the file's ``report`` asks for, as markdown lines (none without one)."""
    report = check_report(sweep)
    return [*seeds_table(points, report.get("seeds_needed") or {}, shown),
            *history_tables(runs, out, report.get("history") or {}, shown)]
