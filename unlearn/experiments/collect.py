"""Collecting a sweep: every setting's numbers as mean ± sd over its seeds, into results.json and results.md.

For each setting (a group's point, over its seeds) and each metric of :func:`run_metrics`:
the mean, the sample standard deviation (ddof = 1), n (the finished runs that have the number),
and a 95% percentile bootstrap interval of the mean over the seeds (1000 resamples, numpy seed 0;
:mod:`unlearn.reporting.stats`); beside it, each run's own intervals over its questions where its folder has
the selected epoch's per-question values (``question_ci`` of a run entry; :mod:`unlearn.reporting.question_ci`).
The metrics are
named in the words of the runs' benchmark (:mod:`unlearn.reporting.display`): TOFU's forget quality
and model utility (and the membership-inference AUCs of LOSS and Min-K% when the runs have them),
MUSE's VerbMem, KnowMem forget and retain and PrivLeak, or multiple choice's forget and general
accuracy. The file's ``report`` adds the seeds its spread asks for and chosen settings epoch by
epoch (:mod:`unlearn.experiments.report`). Each group's finished runs are also drawn by ``compare``
into ``<out>/compare/<group>/`` (error bars where a setting has several seeds), and the file's
``overview`` into ``<out>/overview.md``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from unlearn.errors import UnlearnError
from unlearn.experiments.overview import best_metric, write_overview
from unlearn.experiments.report import report_sections
from unlearn.experiments.runner import run_dir
from unlearn.experiments.runs import is_finished
from unlearn.experiments.sweep_file import Run, SweepFile
from unlearn.files import atomic_write_text
from unlearn.names import format_number
from unlearn.reporting.compare import (UTILITY_FLOOR, best_within_utility, compare, load_run, run_benchmark,
                                       selected_epoch)
from unlearn.reporting.display import Display, display_of
from unlearn.reporting.question_ci import run_intervals
from unlearn.reporting.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CI_LEVEL, describe, format_stat

STATISTICS = {"mean": "arithmetic mean over the seeds' runs", "sd": "sample standard deviation over seeds (ddof=1); "
              "null with one run", "n": "finished runs that have the number",
              "ci": f"{CI_LEVEL:.0%} percentile bootstrap interval of the mean over seeds ({BOOTSTRAP_RESAMPLES} "
                    f"resamples, numpy default_rng({BOOTSTRAP_SEED})); null with fewer than two runs",
              "question_ci": "per run: value and 95% percentile bootstrap interval of its selected epoch's forget "
                             "quality (forget questions resampled in pairs with the retain model's) and model "
                             "utility (each utility split's questions resampled), from <run>/eval_selected.json"}


def headline(shown: Display) -> tuple[str, ...]:
    """The columns of results.md after the setting, n and the two CIs (results.json holds these and every number
    of the selected epoch's record). TOFU: forget quality, model utility, model utility × start, forget ROUGE-L,
    forget repetition, selected epoch, best FQ at MU ≥ 0.9×, target forget quality, log10 forget quality gain,
    best FQ gain (log10) at MU ≥ 0.9×."""
    forget, utility = shown.forget.title, shown.utility.title
    gain = (f"log10 {forget} gain", best_gain(shown.keys)) if shown.log_forget else ()
    return (forget, utility, f"{utility} × start", *(m.title for m in shown.collected), "selected epoch",
            best_metric(shown.keys), f"target {forget}", *gain)


def _digits(shown: Display) -> dict[str, str]:
    """Each metric's number format: the forget measure's for it, its target and log and the best column (TOFU:
    3 significant digits, p-values), the measure's own for the collected columns; else 3 decimals."""
    forget = shown.forget
    return {forget.title: forget.digits, f"log10 {forget.title}": forget.digits,
            f"log10 {forget.title} gain": ".2f", best_gain(shown.keys): ".2f",
            f"target {forget.title}": forget.digits, best_metric(shown.keys): shown.selection.digits,
            shown.utility.title: shown.utility.digits,
            **{m.title: m.digits for m in (*shown.collected, *shown.optional)}}


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def run_metrics(summary: dict, floor: float = UTILITY_FLOOR) -> dict[str, float | None]:
    """The numbers of one finished run: the selected epoch's, the target's, and how the run ended.

    Named as the run's benchmark shows them (TOFU here; :mod:`unlearn.reporting.display`): ``forget
    quality``, ``model utility`` and the collected columns (``forget ROUGE-L``, ``forget repetition``, the
    membership-inference AUCs ``MIA LOSS AUC`` and ``MIA Min-K% AUC`` when the run has them) are the selected
    epoch's (the saved model); ``model utility × start`` is its utility over epoch 0's; ``best FQ at MU ≥ 0.9×``
    the best-forgetting epoch's forget quality among epochs that kept 0.9× the starting utility (``compare``'s
    column, None when none did); ``target ...`` epoch 0's; ``log10 forget quality gain`` (TOFU) the log10 of the
    selected forget quality over the target's, which compares seeds whose targets lie decades apart, and ``best FQ
    gain (log10) at MU ≥ 0.9×`` that of the best-within-utility one (None when no epoch kept it); ``stopped
    early`` 1 after a collapse stop, else 0; ``last ...`` the last evaluated epoch's; then every number of the
    selected epoch's record under its own key (``forget/rouge_l``...).
    """
    keys = run_benchmark(summary)
    shown = display_of(keys)
    forget, utility = shown.forget, shown.utility
    evaluation = summary["evaluation"]
    history = evaluation["history"]
    chosen, ratio = selected_epoch(evaluation)
    best = best_within_utility(history, floor, keys)
    value = _number(chosen.get(forget.key))
    metrics = {forget.title: value}
    target = _number(history[0].get(forget.key))
    if shown.log_forget:  # forget quality is a p-value: its log is what varies across settings
        metrics[f"log10 {forget.title}"] = math.log10(value) if value else None
        # Within the run, against its own target: seeds whose targets sit decades apart still compare.
        metrics[f"log10 {forget.title} gain"] = math.log10(value) - math.log10(target) if value and target else None
        top = None if best is None else _number(best.get(forget.key))
        metrics[best_gain(keys, floor)] = math.log10(top) - math.log10(target) if top and target else None
    metrics.update({
        utility.title: _number(chosen.get(utility.key)), f"{utility.title} × start": ratio,
        **{m.title: _number(chosen.get(m.key)) for m in shown.collected},
        **{m.title: _number(chosen[m.key]) for m in shown.optional if _number(chosen.get(m.key)) is not None},
        "selected epoch": _number(evaluation.get("selected_epoch")),
        best_metric(keys, floor): None if best is None else _number(best.get(shown.selection.key)),
        f"target {forget.title}": target,
        f"target {utility.title}": _number(history[0].get(utility.key)),
        "stopped early": float(evaluation.get("stopped_epoch") is not None), "steps": _number(summary.get("steps")),
        f"last {utility.title}": _number(history[-1].get(utility.key)),
    })
    if shown.repetition:
        metrics[f"last {shown.repetition.title}"] = _number(history[-1].get(shown.repetition.key))
    metrics.update({key: _number(value) for key, value in chosen.items() if key not in ("epoch", "step")})
    return metrics


def collect_points(sweep: SweepFile, runs: list[Run], out: Path) -> list[dict]:
    """One entry per setting: its settings, its benchmark (that of its first collected run; None without one),
    its runs and their status, and each metric over its seeds."""
    points: dict[tuple[str, str], dict] = {}
    seed_keys = set(sweep.seed_keys) if sweep.seeds else set()
    for run in runs:
        point = points.setdefault((run.group, run.point), {
            "group": run.group, "point": run.point, "benchmark": None,
            "settings": {k: v for k, v in run.settings if k not in seed_keys}, "runs": [], "_metrics": []})
        folder = run_dir(out, run)
        entry = {"name": run.name, "seed": run.seed, "dir": str(folder), "status": "not run"}
        if is_finished(folder):
            try:
                summary = load_run(folder)
                point["_metrics"].append(run_metrics(summary))
                point["benchmark"] = point["benchmark"] or run_benchmark(summary).name
                entry["status"] = "done"
                entry.update(_question_ci(folder, summary))
            except UnlearnError as err:  # a run without evaluation: finished, but nothing to collect
                entry["status"] = f"not collected: {err}"
        elif folder.exists():
            entry["status"] = "unfinished"
        point["runs"].append(entry)
    for point in points.values():
        found = point.pop("_metrics")
        names = list(dict.fromkeys(k for m in found for k in m))
        point["n"] = len(found)
        point["metrics"] = {name: describe([m.get(name) for m in found]) for name in names}
    return list(points.values())


def _question_ci(folder: Path, summary: dict) -> dict:
    """``{"question_ci": ...}``: the run's intervals over questions (:mod:`unlearn.reporting.question_ci`), when
    its folder has the selected epoch's per-question values; else nothing."""
    intervals = run_intervals(folder, summary["evaluation"].get("selected_epoch"))
    return {"question_ci": intervals} if intervals else {}


def question_table(points: list[dict]) -> list[str]:
    """Each run's forget quality and model utility with their 95% intervals over questions (empty without any)."""
    rows = [(r["name"], r["question_ci"]) for p in points for r in p["runs"] if r.get("question_ci")]
    if not rows:
        return []
    lines = ["| run | forget quality | 95% CI over questions | model utility | 95% CI over questions |",
             "|---|---:|---:|---:|---:|"]
    for name, ci in rows:
        cells = [name]
        for metric, digits in (("forget quality", ".3g"), ("model utility", ".3f")):
            stat = ci.get(metric)
            cells += ["", ""] if stat is None else [
                format_number(stat["value"], digits),
                "[" + ", ".join(format_number(x, digits) for x in stat["ci"]) + "]"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def shown_for(points: list[dict]) -> Display:
    """The display of these settings' benchmark: that of the first one collected (TOFU if none was)."""
    return display_of(next((p["benchmark"] for p in points if p.get("benchmark")), "tofu"))


def _cell(point: dict, metric: str, digits: dict[str, str], ci: bool = False) -> str:
    stat = point["metrics"].get(metric)
    return "" if stat is None else format_stat(stat, digits.get(metric, ".3f"), ci)


def _ci(point: dict, metric: str, digits: dict[str, str]) -> str:
    stat = point["metrics"].get(metric)
    if not stat or not stat["ci"]:
        return ""
    return "[" + ", ".join(format_stat({"mean": x, "sd": None}, digits.get(metric, ".3f"), False)
                           for x in stat["ci"]) + "]"


def _reading(shown: Display) -> str:
    forget, utility = shown.forget.title, shown.utility.title
    return (f"{utility} × start is relative to the run's epoch 0; {best_metric(shown.keys)} is "
            f"{shown.selection_phrase} among epochs that kept {UTILITY_FLOOR:g}× the starting utility; "
            f"target {forget} is epoch 0's" + (f"; log10 {forget} gain is the log10 of the selected epoch's {forget} "
                                               f"over the target's, run by run, and {best_gain(shown.keys)} that "
                                               f"of {best_metric(shown.keys)}." if shown.log_forget else "."))


def best_gain(keys, floor: float = UTILITY_FLOOR) -> str:
    """The name of the best-within-utility forget quality's log10 gain over the target (TOFU): ``best FQ gain
    (log10) at MU ≥ 0.9×``, the tuning criterion read against each seed's own target."""
    return best_metric(keys, floor).replace(" at ", " gain (log10) at ", 1)


def group_table(points: list[dict]) -> list[str]:
    """The markdown table of one group's settings, in the words of their benchmark."""
    shown = shown_for(points)
    columns, digits = headline(shown), _digits(shown)
    optional = [m.title for m in shown.optional
                if any((p["metrics"].get(m.title) or {}).get("mean") is not None for p in points)]
    short_forget, short_utility, _ = shown.short
    titles = ("setting", "n", *columns[:2], f"{short_forget} 95% CI", f"{short_utility} 95% CI", *columns[2:],
              *optional)
    lines = ["| " + " | ".join(titles) + " |", "|---|" + "---:|" * (len(titles) - 1)]
    for p in points:
        cells = [p["point"], f"{p['n']}/{len(p['runs'])}", _cell(p, columns[0], digits), _cell(p, columns[1], digits),
                 _ci(p, columns[0], digits), _ci(p, columns[1], digits),
                 *(_cell(p, m, digits) for m in (*columns[2:], *optional))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def results_markdown(sweep: SweepFile, points: list[dict], extra: list[str] = ()) -> str:
    """Markdown: one table per group, a row per setting, each number mean ± sd over its seeds; then ``extra``
    (the sections the file's ``report`` asks for) and each run's intervals over its questions."""
    seeds = (f"seeds {', '.join(map(str, sweep.seeds))}, each setting {', '.join(sweep.seed_keys)}" if sweep.seeds
             else "one run per setting (no seeds)")
    benchmarks = list(dict.fromkeys(p["benchmark"] for p in points if p.get("benchmark"))) or ["tofu"]
    reading = " ".join(_reading(display_of(name)) if len(benchmarks) == 1 else
                       f"{name} runs: {_reading(display_of(name))}" for name in benchmarks)
    lines = [f"# Sweep {sweep.name}", "", *([sweep.description, ""] if sweep.description else []),
             f"From `{sweep.path}`: {seeds}.", "",
             "Each number is the mean ± sd over the setting's finished runs (sd with ddof = 1; n = finished runs / "
             "planned). The CI columns are 95% percentile bootstrap intervals of the mean over the seeds (1000 "
             "resamples, fixed seed); each run's own intervals over its questions, where its folder "
             "has the selected epoch's per-question values, are in the last section. "
             f"Numbers are those of each run's selected epoch (its saved model); {reading}", ""]
    for group in dict.fromkeys(p["group"] for p in points):
        lines += [f"## {group}", "", *group_table([p for p in points if p["group"] == group]), ""]
    lines += extra
    per_question = question_table(points)
    if per_question:
        lines += ["## Intervals over questions", "",
                  "Each run on its own: the 95% percentile bootstrap interval of its selected epoch's number over "
                  "its questions (forget questions resampled in pairs with the retain model's; each utility split "
                  "on its own; unlearn/reporting/question_ci.py). It shows how finely one run measures, not how "
                  "much a repeat would move.", "", *per_question, ""]
    failed = [r for p in points for r in p["runs"] if r["status"] not in ("done", "not run")]
    if failed:
        lines += ["Not collected:", "", *(f"- {r['name']}: {r['status']}" for r in failed), ""]
    return "\n".join(lines)


def collect(sweep: SweepFile, runs: list[Run], out: str | Path, compare_groups: bool = True) -> dict:
    """Write ``<out>/results.json`` and ``results.md`` (and each group's comparison); returns the results.

    Reads only finished runs' ``summary.json``; runs nothing.
    """
    out = Path(out)
    points = collect_points(sweep, runs, out)
    results = {"sweep": sweep.name, "file": str(sweep.path), "description": sweep.description,
               "seeds": list(sweep.seeds) if sweep.seeds else None, "seed_keys": list(sweep.seed_keys),
               "statistics": STATISTICS, "points": points}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "results.json", json.dumps(results, indent=1))
    extra = report_sections(sweep, runs, out, points, shown_for(points))
    atomic_write_text(out / "results.md", results_markdown(sweep, points, extra))
    if compare_groups:
        for group in dict.fromkeys(r.group for r in runs):
            finished = [run_dir(out, r) for r in runs if r.group == group and is_finished(run_dir(out, r))]
            try:
                if finished:
                    compare(finished, out / "compare" / group, title=f"{sweep.name}: {group} ({len(finished)} runs)",
                            overwrite=True)
            except UnlearnError as err:  # e.g. runs without evaluation: the tables above still stand
                print(f"[sweep] no comparison for group {group}: {err}")
    if sweep.overview:
        write_overview(sweep, runs, out, points)
    return results
