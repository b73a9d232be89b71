"""``python -m unlearn compare RUN_DIR... [--out DIR]``: finished runs side by side.

Reads each run's ``summary.json`` (written by ``fit``) and writes into ``--out``:

- ``comparison.md``: one row per run, in the words of the runs' benchmark (:mod:`unlearn.reporting.display`;
  TOFU: method, forget split, forget quality and model utility of the selected epoch, forget ROUGE-L,
  fluency of the forget-set generations, selected epoch, last epoch, early stop, and the best forget
  quality among epochs that kept ``--utility-floor`` of the starting utility; MUSE: VerbMem, KnowMem
  forget and retain, PrivLeak, MIA LOSS AUC; multiple choice: forget and general accuracy), preceded by
  the target and retain models of each forget split; then, for runs with an ``attack.json``, what each
  attack brought back (:mod:`unlearn.reporting.robustness`);
- ``comparison.png``: the benchmark's forget measure against its utility (TOFU's forget quality on a log
  scale), one trajectory per run with a point per evaluated epoch, beside utility against training step
  (:mod:`unlearn.reporting.plots`).

Runs of different benchmarks are refused (:class:`MixedBenchmarksError`): their numbers do not compare.
Runs of one setting over several seeds (folders named ``<setting>_seed<N>``, as ``python -m unlearn
sweep`` names them) make one row, ``<setting> (n=k)``, each number the mean ± sd over the seeds (sd
with ddof = 1), and one trajectory, the mean per evaluated epoch with ±1 sd error bars
(:mod:`unlearn.reporting.stats`); ``--separate-seeds`` keeps them apart.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from unlearn.errors import RunFolderError, UnlearnError
from unlearn.files import atomic_write_text
from unlearn.names import BenchmarkKeys, format_number
from unlearn.reporting.display import Display, display_of
from unlearn.reporting.plots import save_png, trajectory_figure
from unlearn.reporting.robustness import robustness_figure, robustness_notes, robustness_table
from unlearn.reporting.runs import (TOFU, MixedBenchmarksError, NotARunError, best_within_utility, common_benchmark,
                                    forget_split_of, load_run, models_of, run_benchmark, selected_epoch)
from unlearn.reporting.stats import format_stat, mean_history, mean_sd, seed_groups

# Reading runs (unlearn.reporting.runs) is part of this module's interface: the sweep and the tests use it from here.
__all__ = ["UTILITY_FLOOR", "MixedBenchmarksError", "NotARunError", "best_within_utility", "common_benchmark",
           "compare", "comparison_table", "floor_column", "group_row", "load_run", "main", "reference_rows",
           "run_benchmark", "run_row", "selected_epoch", "table_columns"]

UTILITY_FLOOR = 0.9
OUTPUTS = ("comparison.md", "comparison.png", "robustness.png")
LEFT_ALIGNED = ("run", "method", "forget split", "stopped")


def floor_column(floor: float, benchmark: BenchmarkKeys = TOFU) -> str:
    """``best FQ at MU ≥ 0.9× (epoch)``, ``best PrivLeak at KnowMem retain ≥ 0.9× (epoch)``..."""
    _, utility, selection = display_of(benchmark).short
    return f"best {selection} at {utility} ≥ {floor:g}× (epoch)"


def _last_column(display: Display) -> str:
    return f"last epoch: {display.short[0]} / {display.short[1]}"


def _utility_column(display: Display) -> str:
    return f"{display.utility.title} (× target)"


def table_columns(benchmark: BenchmarkKeys = TOFU, floor: float = UTILITY_FLOOR) -> tuple[str, ...]:
    """The titles of ``comparison.md``'s table for runs of ``benchmark``."""
    shown = display_of(benchmark)
    return ("run", "method", "forget split", shown.forget.title, *(m.title for m in shown.before),
            _utility_column(shown), *(m.title for m in shown.after), "selected epoch", _last_column(shown), "stopped",
            floor_column(floor, benchmark))


def _stopped(evaluation: dict) -> str:
    return f"epoch {evaluation['stopped_epoch']} (collapse)" if evaluation.get("stopped_epoch") is not None else "no"


def run_row(name: str, summary: dict, floor: float = UTILITY_FLOOR) -> dict[str, str]:
    """The table row of one run: the selected epoch's numbers and how the run ended."""
    keys = run_benchmark(summary)
    shown = display_of(keys)
    evaluation = summary["evaluation"]
    history, selected = evaluation["history"], evaluation["selected_epoch"]
    chosen, ratio = selected_epoch(evaluation)
    last, best = history[-1], best_within_utility(history, floor, keys)
    row = {"run": name, "method": summary["loss"], "forget split": forget_split_of(summary),
           **{m.title: m.cell(chosen) for m in (shown.forget, *shown.before, *shown.after)}}
    row[_utility_column(shown)] = f"{shown.utility.cell(chosen)} ({format_number(ratio, '.2f')}×)"
    row.update({"selected epoch": str(selected),
                _last_column(shown): f"{last['epoch']}: {shown.forget.cell(last)} / {shown.utility.cell(last)}",
                "stopped": _stopped(evaluation),
                floor_column(floor, keys):
                    "none" if best is None else f"{shown.selection.cell(best)} ({best['epoch']})"})
    return row


def group_row(name: str, summaries: list[dict], floor: float = UTILITY_FLOOR) -> dict[str, str]:
    """The table row of one setting's runs over seeds: :func:`run_row`'s numbers as mean ± sd."""
    keys = run_benchmark(summaries[0])
    shown = display_of(keys)

    def cell(values, digits: str = ".3f") -> str:
        return counted(list(values), digits)

    def measure(m, records) -> str:
        return cell((r.get(m.key) for r in records), m.digits)

    evaluations = [s["evaluation"] for s in summaries]
    chosen = [selected_epoch(e) for e in evaluations]
    records = [c for c, _ in chosen]
    lasts = [e["history"][-1] for e in evaluations]
    bests = [best_within_utility(e["history"], floor, keys) for e in evaluations]
    stopped = sum(e.get("stopped_epoch") is not None for e in evaluations)
    missing = sum(b is None for b in bests)
    row = {"run": f"{name} (n={len(summaries)})", "method": summaries[0]["loss"],
           "forget split": forget_split_of(summaries[0]),
           **{m.title: measure(m, records) for m in (shown.forget, *shown.before, *shown.after)}}
    row[_utility_column(shown)] = f"{measure(shown.utility, records)} ({cell((r for _, r in chosen), '.2f')}×)"
    row.update({"selected epoch": cell((e["selected_epoch"] for e in evaluations), ".1f"),
                _last_column(shown): f"{cell((r['epoch'] for r in lasts), '.1f')}: "
                                 f"{measure(shown.forget, lasts)} / {measure(shown.utility, lasts)}",
                "stopped": f"{stopped} of {len(summaries)} (collapse)" if stopped else "no",
                floor_column(floor, keys): (measure(shown.selection, [b for b in bests if b]) if missing < len(bests)
                                            else "none") + (f" ({missing} none)" if 0 < missing else "")})
    return row


def reference_rows(summaries: list[dict]) -> list[dict[str, str]]:
    """The target (epoch 0 of a run) and retain models of one forget split: one model pair's numbers, or their
    mean ± sd when runs over seeds each trained their own pair (``models_of``)."""
    shown = display_of(run_benchmark(summaries[0]))
    evaluations = [s["evaluation"] for s in summaries]
    starts = [e["history"][0] for e in evaluations]
    retains = [{**(e.get("retain") or {}), **(e.get("retain_fluency") or {})} for e in evaluations]

    def cell(m, records: list[dict]) -> str:
        if len(records) == 1:
            return m.cell(records[0])
        return counted([r.get(m.key) for r in records], m.digits)

    return [{"run": "" if len(summaries) == 1 else f"(n={len(summaries)} models)", "method": method,
             "forget split": forget_split_of(summaries[0]),
             **{m.title: cell(m, records) for m in (shown.forget, *shown.before, *shown.after)},
             _utility_column(shown): cell(shown.utility, records), "selected epoch": "", _last_column(shown): "",
             "stopped": ""}
            for method, records in (("target (before unlearning)", starts), ("retain model", retains))]


def counted(values: list, digits: str) -> str:
    """Mean ± sd of ``values`` (one per run or model), `` (n=k)`` after it when only k of them have a number (a
    measure added after some runs finished), so a mean over fewer is not read as one over all."""
    mean, sd, k = mean_sd(values)
    return format_stat({"mean": mean, "sd": sd}, digits, ci=False) + (f" (n={k})" if 0 < k < len(values) else "")


def comparison_table(runs: dict[str, dict | list[dict]], floor: float = UTILITY_FLOOR) -> str:
    """Markdown table of ``{name: summary}`` (or ``{name: [summary per seed]}``), all of one benchmark:
    reference models per forget split, then one row per run or setting."""
    rows = []
    summaries = [s for value in runs.values() for s in (value if isinstance(value, list) else [value])]
    keys = common_benchmark(runs)
    for models in models_of(summaries).values():
        rows.extend(reference_rows(models))
    rows.extend(group_row(name, value, floor) if isinstance(value, list) else run_row(name, value, floor)
                for name, value in runs.items())
    columns = table_columns(keys, floor)
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "".join("---|" if c in LEFT_ALIGNED else "---:|" for c in columns)]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def compare(run_dirs: list[str | Path], out: str | Path, title: str | None = None,
            utility_floor: float = UTILITY_FLOOR, overwrite: bool = False, group_seeds: bool = True) -> dict[str, Path]:
    """Write ``comparison.md`` and ``comparison.png`` for ``run_dirs`` (runs of one benchmark) into ``out``.

    With ``group_seeds``, folders ``<setting>_seed<N>`` of one setting make one row and one trajectory
    with error bars (mean ± sd over the seeds, :func:`group_row`). Runs with an ``attack.json`` add a
    robustness table (:func:`unlearn.reporting.robustness.robustness_table`).

    Each file is written whole or not at all; an existing one is replaced only with ``overwrite``.

    Returns:
        ``{"table": path, "figure": path}``.

    Raises:
        NotARunError: a folder that is not a finished, evaluated run (checked before anything is written).
        MixedBenchmarksError: runs of different benchmarks (nothing is written).
        RunFolderError: ``out`` already holds a comparison and ``overwrite`` is false (nothing is written).
        ValueError: no folders, two with the same name, or a utility floor outside [0, 1].
    """
    if not run_dirs:
        raise ValueError("give at least one run folder")
    if not 0 <= utility_floor <= 1:
        raise ValueError(f"the utility floor is a fraction of the starting utility in [0, 1], got {utility_floor}")
    existing = [str(Path(out) / name) for name in OUTPUTS if (Path(out) / name).exists()]
    if existing and not overwrite:
        raise RunFolderError(f"{' and '.join(existing)} already exist{'s' * (len(existing) == 1)}; nothing was "
                             "written. Pass --overwrite to replace the comparison, or choose another --out.")
    loaded: dict[str, dict] = {}
    for run_dir in run_dirs:
        name = Path(run_dir).resolve().name
        if name in loaded:
            raise ValueError(f"two runs are named {name}; give folders with different names")
        loaded[name] = load_run(run_dir)
    keys = common_benchmark(loaded)
    shown = display_of(keys)
    groups = seed_groups(run_dirs) if group_seeds else {name: [Path(folder)] for name, folder in zip(loaded, run_dirs)}
    named = {base: [loaded[Path(folder).resolve().name] for folder in dirs] for base, dirs in groups.items()}
    runs: dict[str, dict | list[dict]] = {
        (base if len(dirs) > 1 else Path(dirs[0]).resolve().name): named[base] if len(dirs) > 1 else named[base][0]
        for base, dirs in groups.items()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    heading = title or f"Comparison of {len(runs)} run{'s' * (len(runs) > 1)}"
    notes = ["", "Numbers are those of each run's selected epoch (the model saved as `<run>/model`); "
             f"{shown.utility.title} in brackets is relative to the run's epoch 0. {shown.table_note}"
             f"The last column is {shown.selection_phrase} among evaluated epochs whose utility stayed at least "
             f"{utility_floor:g}× the run's epoch 0 (none: no epoch did). A row `name (n=k)` holds k runs of one "
             "setting over seeds: each number is their mean ± sd (sd with ddof = 1; `(n=k)` after it: only k of "
             "them have that number), and its figure the mean per "
             "epoch with ±1 sd error bars; where the seeds trained their own target and retain models, the "
             "reference rows are mean ± sd over those models, `(n=k models)`, and the figure's retain model "
             "their mean.", ""]
    robustness = robustness_table(runs, shown)
    if robustness:
        save_png(robustness_figure(runs, shown), out / "robustness.png")
        notes += ["## Robustness", "", robustness, "", robustness_notes(shown), "",
                  "![what each attack brings back](robustness.png)", ""]
    table = out / OUTPUTS[0]
    atomic_write_text(table, f"# {heading}\n\n{comparison_table(runs, utility_floor)}\n" + "\n".join(notes)
                      + f"\n![{shown.forget.title} vs {shown.utility.title}](comparison.png)\n")
    references = {f"retain model ({split})": tuple(mean_sd((s["evaluation"].get("retain") or {}).get(key)
                                                           for s in models)[0] for key in (keys.utility, keys.forget))
                  for split, models in models_of(list(loaded.values())).items()}
    histories, spread, selected, stars = {}, {}, {}, {}
    for name, value in runs.items():
        if isinstance(value, list):
            histories[name], spread[name] = mean_history([s["evaluation"]["history"] for s in value])
            stars[name] = _mean_selected(value, shown)
        else:
            histories[name], selected[name] = value["evaluation"]["history"], value["evaluation"]["selected_epoch"]
    figure = save_png(trajectory_figure(histories, heading, selected, references, spread, stars, benchmark=keys),
                      out / OUTPUTS[1])
    return {"table": table, "figure": figure}


def _mean_selected(summaries: list[dict], display: Display) -> tuple[dict, dict]:
    """Mean and sd over seeds of the selected epochs' numbers that the figure draws."""
    chosen = [selected_epoch(s["evaluation"])[0] for s in summaries]
    drawn = [display.utility.key, display.forget.key] + ([display.second.key] if display.second else [])
    stats = {key: mean_sd(c.get(key) for c in chosen) for key in drawn}
    return {k: v[0] for k, v in stats.items()}, {k: v[1] for k, v in stats.items()}


def main(argv: list[str]) -> int:
    """``python -m unlearn compare``: its own flags (run folders), not a run config."""
    parser = argparse.ArgumentParser(prog="python -m unlearn compare",
                                     description="Table and figure comparing finished `fit` runs.")
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders written by `python -m unlearn fit`")
    parser.add_argument("--out", default=None, help="folder for comparison.md and comparison.png "
                        "(default: compare/ beside the first run)")
    parser.add_argument("--title", default=None, help="heading of the table and the figure")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing comparison.md and "
                        "comparison.png in --out (refused otherwise)")
    parser.add_argument("--separate-seeds", action="store_true", help="a row per run folder, even for folders "
                        "<setting>_seed<N> of one setting (default: one row, mean ± sd over the seeds)")
    parser.add_argument("--utility-floor", type=float, default=UTILITY_FLOOR,
                        help="last column: the best-forgetting epoch (TOFU: highest forget quality) among epochs "
                             f"keeping this fraction of the starting utility (default {UTILITY_FLOOR})")
    args = parser.parse_args(argv)
    out = args.out or Path(args.runs[0]).resolve().parent / "compare"
    try:
        paths = compare(args.runs, out, args.title, args.utility_floor, args.overwrite, not args.separate_seeds)
    except (UnlearnError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(paths["table"].read_text())
    print(f"Wrote {paths['table']} and {paths['figure']}")
    return 0
