"""``python -m unlearn reproduce NAME``: run a published recipe and check its numbers against their bands.

A recipe (``configs/reproduce/<name>.yaml``, or a path; docs/reproduce.md)::

    description: what is reproduced
    sweep: builtin_findings          # a sweep file (configs/sweep/) ...
    runs: {axes: ...}                # ... or one written inline, as a sweep file's keys
    overrides: [trainer.accelerator=cpu]           # for every run, after the sweep's
    env: {OMP_NUM_THREADS: "1", ATEN_CPU_CAPABILITY: default}   # over the sweep's environment
    requires: gpu                    # optional (also from the sweep file): refused on a machine without one
    bands:                           # setting name -> metric -> [low, high] (inclusive)
      default: {forget quality: [0.01, 0.6], model utility: [0.70, 0.80]}

The runs go to ``--out`` (default ``runs/reproduce/<name>``) with their own ``run.cache_dir``
(``<out>/cache``, unless an override sets one), so the built-in target and retain models are
trained under the recipe's environment and never taken from an earlier cache. Finished runs are
skipped, so a second call only checks. A setting's value is its mean over seeds
(:mod:`unlearn.experiments.collect`; the metric names are those of ``results.json``). The table
(setting, metric, value, band, ok) is printed and written to ``<out>/reproduce.md``; a value
outside its band, or missing, ends the command with :class:`OutsideBandError` (exit code 3).
A recipe that ``requires: gpu`` (itself or its sweep file) is refused on a machine without a GPU
before anything starts (exit code 2); ``--collect`` still checks runs finished elsewhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import yaml

from unlearn.errors import UnlearnError
from unlearn.experiments.report import check_report
from unlearn.experiments.sweep import add_run_flags, run_and_collect
from unlearn.experiments.sweep_file import (SweepFileError, check_requirements, load_sweep, parse_sweep, requirements,
                                            resolve_sweep_path, text)
from unlearn.files import atomic_write_text
from unlearn.names import format_number

RECIPE_KEYS = {"description", "sweep", "runs", "overrides", "env", "bands", "requires"}


class OutsideBandError(UnlearnError):
    """A reproduced number fell outside the band its recipe allows (or was not produced)."""

    exit_code = 3


def load_recipe(name: str) -> tuple[dict, Path]:
    """The recipe's mapping and path, its keys and bands checked."""
    path = resolve_sweep_path(name, "reproduce")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise SweepFileError(f"Cannot parse recipe {path}: {err}") from err
    if not isinstance(recipe, dict) or set(recipe) - RECIPE_KEYS:
        raise SweepFileError(f"{path}: a recipe is a mapping with keys {sorted(RECIPE_KEYS)}.")
    if ("sweep" in recipe) == ("runs" in recipe):
        raise SweepFileError(f"{path}: give either 'sweep' (a sweep file) or 'runs' (an inline sweep), not both.")
    bands = recipe.get("bands")
    if not isinstance(bands, dict) or not bands:
        raise SweepFileError(f"{path}: 'bands' maps setting names to {{metric: [low, high]}}.")
    for setting, metrics in bands.items():
        for metric, band in (metrics or {}).items():
            if (not isinstance(band, list) or len(band) != 2 or not all(isinstance(x, (int, float)) for x in band)
                    or band[0] > band[1]):
                raise SweepFileError(f"{path}: the band of {setting} / {metric} must be [low, high] with low <= high, "
                                     f"got {band!r}.")
    requirements(recipe.get("requires"), path)
    return recipe, path


def recipe_sweep(recipe: dict, path: Path):
    """The recipe's sweep, with the recipe's environment over the sweep's."""
    if "sweep" in recipe:
        sweep = load_sweep(str(recipe["sweep"]))
    else:
        sweep = dataclasses.replace(parse_sweep(recipe["runs"] or {}, path), name=path.stem)
    env = {str(k): text(v) for k, v in (recipe.get("env") or {}).items()}
    needs = tuple(dict.fromkeys((*sweep.requires, *requirements(recipe.get("requires"), path))))
    check_report(sweep)  # a mistake in its report fails now, not after the runs
    return dataclasses.replace(sweep, env={**sweep.env, **env}, requires=needs)


def check_bands(bands: dict, points: list[dict]) -> list[dict]:
    """One row per (setting, metric): the collected mean, its band and whether it lies inside."""
    by_name = {p["point"]: p for p in points}
    rows = []
    for setting, metrics in bands.items():
        for metric, (low, high) in (metrics or {}).items():
            stat = (by_name.get(setting) or {}).get("metrics", {}).get(metric) or {}
            value = stat.get("mean")
            ok = value is not None and math.isfinite(value) and low <= value <= high
            rows.append({"setting": setting, "metric": metric, "value": value, "sd": stat.get("sd"),
                         "n": stat.get("n", 0), "band": [low, high], "ok": ok})
    return rows


def bands_table(rows: list[dict]) -> str:
    lines = ["| setting | metric | value | band | ok |", "|---|---|---:|---:|---|"]
    for r in rows:
        value = "missing" if r["value"] is None else format_number(r["value"], "g")
        if r["sd"] is not None:
            value += f" ± {format_number(r['sd'], 'g')} (n={r['n']})"
        band = f"[{format_number(float(r['band'][0]), 'g')}, {format_number(float(r['band'][1]), 'g')}]"
        lines.append(f"| {r['setting']} | {r['metric']} | {value} | {band} | {'ok' if r['ok'] else 'OUTSIDE'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearn reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("name", metavar="NAME", help="a recipe: a name under configs/reproduce/ (builtin_default, "
                        "builtin_findings; on a GPU: tofu_llama32_1b, tofu_llama2_7b) or a path")
    add_run_flags(parser)
    args = parser.parse_intermixed_args(argv)  # key=value may follow the flags
    recipe, path = load_recipe(args.name)
    sweep = recipe_sweep(recipe, path)
    out = Path(args.out) if args.out else Path("runs") / "reproduce" / path.stem
    if not args.collect:  # collecting runs nothing, so runs finished on a GPU machine can be checked anywhere
        check_requirements(sweep.requires, f"Recipe {path.stem} ({path})",
                           f"Run `python -m unlearn reproduce {args.name}` on a machine with a CUDA GPU (docs/"
                           f"reproduce.md, \"GPU recipes\"), then check its runs anywhere with `python -m unlearn "
                           f"reproduce {args.name} --collect --out {out}`.")
    extra = [*(text(o) for o in recipe.get("overrides") or ()), *args.overrides]
    if not any(o.startswith("run.cache_dir=") for o in [*sweep.overrides, *extra]):
        extra.append(f"run.cache_dir={out / 'cache'}")  # models trained under this recipe's environment
    results, failed = run_and_collect(sweep, args, out, extra)
    rows = check_bands(recipe["bands"], results["points"])
    table = bands_table(rows)
    outside = [r for r in rows if not r["ok"]]
    verdict = (f"{len(outside)} of {len(rows)} numbers outside their band." if outside
               else f"All {len(rows)} numbers inside their bands.")
    atomic_write_text(out / "reproduce.md", f"# Reproduce {path.stem}\n\nRecipe: `{path}`\n\n{table}\n\n{verdict}\n")
    print(table)
    print(verdict)
    if failed:
        print(f"Failed runs: {', '.join(failed)} (logs in {out / 'logs'})", file=sys.stderr)
    if outside:
        names = ", ".join(f"{r['setting']} {r['metric']}" for r in outside)
        raise OutsideBandError(f"reproduce {path.stem}: {names} outside the band of {path} (table in "
                               f"{out / 'reproduce.md'}; runs and logs in {out}).")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
