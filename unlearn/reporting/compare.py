"""``python -m unlearn compare RUN_DIR... [--out DIR]``: finished runs side by side.

Reads each run's ``summary.json`` (written by ``fit``) and writes into ``--out``:

- ``comparison.md``: one row per run (method, forget split, forget quality and model utility of
  the selected epoch, forget ROUGE-L, fluency of the forget-set generations, selected epoch, last
  epoch, early stop, and the best forget quality among epochs that kept ``--utility-floor`` of the
  starting utility), preceded by the target and retain models of each forget split;
- ``comparison.png``: forget quality (log scale) against model utility, one trajectory per run with
  a point per evaluated epoch, beside model utility against training step (:mod:`unlearn.reporting.plots`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from unlearn.names import FORGET_QUALITY as FQ
from unlearn.names import MODEL_UTILITY as MU
from unlearn.names import format_number, metric_key
from unlearn.reporting.plots import save_png, trajectory_figure
from unlearn.errors import RunFolderError, UnlearnError
from unlearn.files import atomic_write_text

ROUGE_L, DISTINCT_2, REPETITION = (metric_key("forget", figure) for figure in ("rouge_l", "distinct_2", "repetition"))
COLUMNS = ("run", "method", "forget split", "forget quality", "model utility (× target)", "forget ROUGE-L",
           "forget distinct-2", "forget repetition", "selected epoch", "last epoch: FQ / MU", "stopped")
UTILITY_FLOOR = 0.9
OUTPUTS = ("comparison.md", "comparison.png")


def floor_column(floor: float) -> str:
    return f"best FQ at MU ≥ {floor:g}× (epoch)"


class NotARunError(UnlearnError, FileNotFoundError):
    """A folder given to ``compare`` that does not hold a finished, evaluated ``fit`` run."""


def load_run(run_dir: str | Path) -> dict:
    """A finished run's summary, with its evaluation history.

    Raises:
        NotARunError: no such folder, no ``summary.json`` (not a run, or not finished), or a run
            without evaluation (``eval.enabled=false``).
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
    return summary


def _record(history: list[dict], epoch: int | None) -> dict:
    return next((r for r in history if r["epoch"] == epoch), {})


def selected_epoch(evaluation: dict) -> tuple[dict, float | None]:
    """The numbers of a run's selected epoch (its saved model), and its model utility relative to epoch 0."""
    history = evaluation["history"]
    chosen = {**_record(history, evaluation["selected_epoch"]), **(evaluation.get("unlearned") or {})}
    start = history[0].get(MU)
    return chosen, chosen[MU] / start if chosen.get(MU) is not None and start else None


def best_within_utility(history: list[dict], floor: float) -> dict | None:
    """The evaluated epoch (after the start) with the highest forget quality among those whose model
    utility stayed at least ``floor`` × the starting utility; the earliest on ties; None if none did.

    A stricter utility constraint than the run's own selection (``eval.collapse_fraction``), for
    comparing the trade-off of methods that overshoot and then recover.
    """
    start = history[0].get(MU)
    if start is None or not math.isfinite(start):
        return None
    eligible = [r for r in history[1:] if r.get(FQ) is not None and r.get(MU) is not None
                and math.isfinite(r[MU]) and r[MU] >= floor * start]
    return max(eligible, key=lambda r: r[FQ], default=None)


def run_row(name: str, summary: dict, floor: float = UTILITY_FLOOR) -> dict[str, str]:
    """The table row of one run: the selected epoch's numbers and how the run ended."""
    evaluation = summary["evaluation"]
    history, selected = evaluation["history"], evaluation["selected_epoch"]
    chosen, ratio = selected_epoch(evaluation)
    last = history[-1]
    stopped = f"epoch {evaluation['stopped_epoch']} (collapse)" if evaluation.get("stopped_epoch") is not None else "no"
    best = best_within_utility(history, floor)
    return {"run": name, "method": summary["loss"], "forget split": summary["forget_split"],
            "forget quality": format_number(chosen.get(FQ), "g"),
            "model utility (× target)": f"{format_number(chosen.get(MU))} ({format_number(ratio, '.2f')}×)",
            "forget ROUGE-L": format_number(chosen.get(ROUGE_L)),
            "forget distinct-2": format_number(chosen.get(DISTINCT_2)),
            "forget repetition": format_number(chosen.get(REPETITION), ".2f"),
            "selected epoch": str(selected),
            "last epoch: FQ / MU": f"{last['epoch']}: {format_number(last.get(FQ), 'g')} / {format_number(last.get(MU))}",
            "stopped": stopped,
            floor_column(floor): "none" if best is None else f"{format_number(best[FQ], 'g')} ({best['epoch']})"}


def reference_rows(summary: dict) -> list[dict[str, str]]:
    """The target (epoch 0 of the run) and retain models of a run's forget split."""
    split, evaluation = summary["forget_split"], summary["evaluation"]
    start = evaluation["history"][0]
    retain = {**(evaluation.get("retain") or {}), **(evaluation.get("retain_fluency") or {})}
    rows = [("target (before unlearning)", start), ("retain model", retain)]
    return [{"run": "", "method": method, "forget split": split,
             "forget quality": format_number(values.get(FQ), "g"),
             "model utility (× target)": format_number(values.get(MU)),
             "forget ROUGE-L": format_number(values.get(ROUGE_L)),
             "forget distinct-2": format_number(values.get(DISTINCT_2)),
             "forget repetition": format_number(values.get(REPETITION), ".2f"),
             "selected epoch": "", "last epoch: FQ / MU": "", "stopped": ""} for method, values in rows]


def comparison_table(runs: dict[str, dict], floor: float = UTILITY_FLOOR) -> str:
    """Markdown table of ``{name: summary}``: reference models per forget split, then one row per run."""
    rows, first = [], {}
    for summary in runs.values():  # per split, a run that also recorded the retain model's fluency, if any
        split = summary["forget_split"]
        if split not in first or (summary["evaluation"].get("retain_fluency")
                                  and not first[split]["evaluation"].get("retain_fluency")):
            first[split] = summary
    for summary in first.values():
        rows.extend(reference_rows(summary))
    rows.extend(run_row(name, summary, floor) for name, summary in runs.items())
    columns = (*COLUMNS, floor_column(floor))
    lines = ["| " + " | ".join(columns) + " |", "|---|---|---|" + "---:|" * (len(COLUMNS) - 4) + "---|---:|"]
    lines += ["| " + " | ".join(row.get(c, "") for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def compare(run_dirs: list[str | Path], out: str | Path, title: str | None = None,
            utility_floor: float = UTILITY_FLOOR, overwrite: bool = False) -> dict[str, Path]:
    """Write ``comparison.md`` and ``comparison.png`` for ``run_dirs`` into ``out``.

    Each file is written whole or not at all; an existing one is replaced only with ``overwrite``.

    Returns:
        ``{"table": path, "figure": path}``.

    Raises:
        NotARunError: a folder that is not a finished, evaluated run (checked before anything is written).
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
    runs: dict[str, dict] = {}
    for run_dir in run_dirs:
        name = Path(run_dir).resolve().name
        if name in runs:
            raise ValueError(f"two runs are named {name}; give folders with different names")
        runs[name] = load_run(run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    heading = title or f"Comparison of {len(runs)} run{'s' * (len(runs) > 1)}"
    notes = ["", "Numbers are those of each run's selected epoch (the model saved as `<run>/model`); "
             "model utility in brackets is relative to the run's epoch 0. Fluency (distinct-2, repetition) "
             "is measured on the forget split's greedy generations and is not part of model utility. "
             f"The last column is the highest forget quality among evaluated epochs whose utility stayed at least "
             f"{utility_floor:g}× the run's epoch 0 (none: no epoch did).", ""]
    table = out / OUTPUTS[0]
    atomic_write_text(table, f"# {heading}\n\n{comparison_table(runs, utility_floor)}\n" + "\n".join(notes)
                      + "\n![forget quality vs model utility](comparison.png)\n")
    references = {f"retain model ({s['forget_split']})": ((s["evaluation"].get("retain") or {}).get(MU),
                                                         (s["evaluation"].get("retain") or {}).get(FQ))
                  for s in runs.values()}
    figure = save_png(trajectory_figure({name: s["evaluation"]["history"] for name, s in runs.items()}, heading,
                                        {name: s["evaluation"]["selected_epoch"] for name, s in runs.items()},
                                        references), out / OUTPUTS[1])
    return {"table": table, "figure": figure}


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
    parser.add_argument("--utility-floor", type=float, default=UTILITY_FLOOR,
                        help="last column: best forget quality among epochs keeping this fraction of the starting "
                             f"model utility (default {UTILITY_FLOOR})")
    args = parser.parse_args(argv)
    out = args.out or Path(args.runs[0]).resolve().parent / "compare"
    try:
        paths = compare(args.runs, out, args.title, args.utility_floor, args.overwrite)
    except (UnlearnError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(paths["table"].read_text())
    print(f"Wrote {paths['table']} and {paths['figure']}")
    return 0
