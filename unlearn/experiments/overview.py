"""A sweep's overview: the collected settings pivoted into a rows × columns table (``overview.md``).

The sweep file says which settings make the rows and the columns::

    overview:
      rows: loss.name                         # one row per value
      columns: [data.forget_split, loss.beta] # one column per combination the runs set
      groups: [splits, beta]                  # optional: only these groups

A column is labelled by its first key's value, then ``leaf=value`` for each further key a run
sets (``forget10``, ``forget10 beta=0.1``). Two tables: the best-forgetting epoch's number among
epochs that kept 0.9× the starting utility (TOFU: the highest forget quality; MUSE: the PrivLeak
closest to 0; multiple choice: the lowest forget accuracy), then the selected epoch's forget measure
@ utility × start; each cell mean ± sd over the setting's seeds. The first row is the target
(epoch 0), averaged over the column's runs. Blank: not run (yet), or the combination is not in the
sweep. The tables speak the benchmark of the settings shown (that of the first collected one).
"""

from __future__ import annotations

from pathlib import Path

from unlearn.experiments.sweep_file import Run, SweepFile, SweepFileError
from unlearn.files import atomic_write_text
from unlearn.names import BENCHMARKS, BenchmarkKeys
from unlearn.reporting.compare import UTILITY_FLOOR, floor_column
from unlearn.reporting.display import display_of
from unlearn.reporting.stats import describe, format_stat

# What the retain model scores, where the benchmark fixes it (the last line of the overview).
RETAIN_NOTES = {"tofu": " The retain model's forget quality is 1.", "muse": " The retain model's PrivLeak is 0."}


def best_metric(benchmark: BenchmarkKeys = BENCHMARKS["tofu"], floor: float = UTILITY_FLOOR) -> str:
    """The name of :func:`~unlearn.experiments.collect.run_metrics`' best-within-utility number:
    ``best FQ at MU ≥ 0.9×`` (``compare``'s column title without its epoch)."""
    return floor_column(floor, benchmark).replace(" (epoch)", "")


BEST = best_metric()  # TOFU's: "best FQ at MU ≥ 0.9×"


def _column(settings: dict, keys: list[str]) -> str | None:
    values = [(k, settings[k]) for k in keys if k in settings]
    if not values or values[0][0] != keys[0]:
        return None
    return " ".join([values[0][1], *(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in values[1:])])


def overview_markdown(sweep: SweepFile, points: list[dict]) -> str:
    """The two pivot tables of ``points`` (as :func:`unlearn.experiments.collect.collect_points` gives them)."""
    spec = sweep.overview or {}
    if not isinstance(spec, dict) or not isinstance(spec.get("rows"), str) or not spec.get("columns"):
        raise SweepFileError(f"{sweep.path}: overview takes rows (a key), columns (a list of keys) and optionally "
                             f"groups, got {spec!r}.")
    columns_keys = list(spec["columns"]) if isinstance(spec["columns"], list) else [spec["columns"]]
    groups = spec.get("groups")
    chosen = [p for p in points if (groups is None or p["group"] in groups) and spec["rows"] in p["settings"]
              and _column(p["settings"], columns_keys)]
    shown = display_of(next((p["benchmark"] for p in chosen if p.get("benchmark")), "tofu"))
    forget, utility = shown.forget, shown.utility.title
    columns = list(dict.fromkeys(_column(p["settings"], columns_keys) for p in chosen))
    rows = list(dict.fromkeys(p["settings"][spec["rows"]] for p in chosen))
    cells: dict[tuple[str, str], dict] = {}
    targets: dict[str, list] = {}
    for p in chosen:
        if p["n"]:  # a setting with no finished run stays blank
            cells[p["settings"][spec["rows"]], _column(p["settings"], columns_keys)] = p
        targets.setdefault(_column(p["settings"], columns_keys), []).extend(
            (p["metrics"].get(f"target {forget.title}") or {}).get("values", []))

    def stat(p: dict, metric: str, digits: str = "g") -> str:
        found = p["metrics"].get(metric)
        return "none" if not found or found["mean"] is None else format_stat(found, digits, ci=False)

    def table(cell) -> list[str]:
        lines = [f"| {spec['rows']} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns),
                 "| target (before unlearning) | " + " | ".join(
                     format_stat(describe(targets[c]), forget.digits, ci=False) if targets[c] else ""
                     for c in columns) + " |"]
        for row in rows:
            lines.append(f"| {row} | " + " | ".join(cell(cells[row, c]) if (row, c) in cells else ""
                                                    for c in columns) + " |")
        return lines

    best = table(lambda p: f"{stat(p, best_metric(shown.keys), shown.selection.digits)} (n={p['n']})")
    selected = table(lambda p: f"{stat(p, forget.title, forget.digits)} @ {stat(p, f'{utility} × start', '.2f')}×")
    phrase = shown.selection_phrase.removeprefix("the ")
    return "\n".join([
        f"# {sweep.name}: overview", "",
        f"{phrase[0].upper()}{phrase[1:]} among evaluated epochs whose {utility} stayed at least "
        f"{UTILITY_FLOOR:g}× the run's starting utility (none: no epoch did), mean ± sd over seeds:", "", *best, "",
        f"The selected epoch (the saved model): {forget.title} @ {utility} relative to the start:", "",
        *selected, "", "Blank: not run, or not in the sweep." + RETAIN_NOTES.get(shown.keys.name, ""), ""])


def write_overview(sweep: SweepFile, runs: list[Run], out: Path, points: list[dict]) -> Path:
    """Write ``<out>/overview.md``; returns its path."""
    path = Path(out) / "overview.md"
    atomic_write_text(path, overview_markdown(sweep, points))
    return path

