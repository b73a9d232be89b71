"""``python -m unlearn sweep FILE``: the ``fit`` runs a sweep file names, run and collected.

    python -m unlearn sweep builtin_findings --jobs 2 --threads 1 run.cache_dir=/tmp/uc
    python -m unlearn sweep tofu_paper_grid --only '*_forget10' --seeds 1001,1002,1003
    python -m unlearn sweep builtin_findings --collect        # tables and figures only, runs nothing

``FILE`` is a path or a name under ``configs/sweep/`` (:mod:`unlearn.experiments.sweep_file` has
the format). The runs go to ``<out>/<group>/<name>/`` (``--out``, default ``runs/sweep/<file name>``),
their logs to ``<out>/logs/`` and their commands to ``<out>/commands.txt``
(:mod:`unlearn.experiments.runner`). A finished run is skipped, so running the command again
continues the sweep; a run that was interrupted continues from its checkpoint with ``--resume``.
At the end, and alone with ``--collect``, ``<out>/results.json`` and ``<out>/results.md`` hold every
setting's numbers as mean ± sd over its seeds with a bootstrap interval, ``<out>/compare/<group>/``
each group's ``compare`` table and figure (error bars over seeds), and ``<out>/overview.md`` the
file's overview table, if it asks for one (:mod:`unlearn.experiments.collect`).
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from unlearn.errors import ConfigError, RunFolderError
from unlearn.experiments.report import check_report
from unlearn.experiments.sweep_file import check_requirements, load_sweep, select


def parse_seeds(text: str | None) -> list[int] | None:
    """``"1001,1002"`` -> ``[1001, 1002]``; None stays None (the file's seeds)."""
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--seeds takes integers separated by commas (e.g. 1001,1002,1003), got {text!r}.") from None


def default_out(name: str) -> Path:
    return Path("runs") / "sweep" / name


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    """The flags ``sweep`` and ``reproduce`` share."""
    parser.add_argument("--out", default=None, help="folder of the runs, logs and collected results")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each run (one is fastest "
                        "when several runs share a few cores)")
    parser.add_argument("--resume", action="store_true", help="continue interrupted runs from their last checkpoint "
                        "(without it, an interrupted run stops the sweep before anything starts)")
    parser.add_argument("--collect", action="store_true", help="run nothing: only collect the finished runs")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="overrides for every run, after the file's settings (e.g. run.cache_dir=/tmp/uc)")


def run_and_collect(sweep, args, out: Path, extra: list[str]) -> tuple[dict, list[str]]:
    """Run the selected runs (unless ``--collect``) and collect the whole sweep; the results and failed runs."""
    from unlearn.experiments.collect import collect
    from unlearn.experiments.runner import run_sweep

    everything = sweep.runs()
    runs = select(everything, getattr(args, "only", None) or [])
    failed = []
    if args.collect:
        if not out.is_dir():
            raise RunFolderError(f"{out} does not exist: nothing to collect. Give the --out of an earlier sweep.")
    else:
        statuses = run_sweep(sweep, runs, out, extra, args.jobs, args.resume, args.threads)
        failed = [name for name, status in statuses.items() if status]
    return collect(sweep, everything, out), failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearn sweep", description=__doc__.split("\n\n")[0],
                                     epilog="Sweep files: configs/sweep/ (docs/reproduce.md describes the format).")
    parser.add_argument("file", metavar="FILE", help="a sweep file: a path, or a name under configs/sweep/ "
                        "(builtin_findings, tofu_paper_grid)")
    parser.add_argument("--seeds", default=None, metavar="S1,S2,...", help="seeds instead of the file's")
    parser.add_argument("--only", action="append", default=[], metavar="PATTERN",
                        help="run only the groups or runs matching this shell pattern (may repeat; collecting still "
                             "covers the whole sweep)")
    parser.add_argument("--dry-run", action="store_true", help="check every run's config and print the commands")
    add_run_flags(parser)
    args = parser.parse_intermixed_args(argv)  # key=value may follow the flags
    sweep = load_sweep(args.file, parse_seeds(args.seeds))
    check_report(sweep)  # a mistake in the report's keys stops the sweep before it runs, not after
    out = Path(args.out) if args.out else default_out(sweep.name)
    if args.dry_run:
        from unlearn.experiments.runner import fit_command, load_run_config, retain_warning

        configs = {}
        for run in select(sweep.runs(), args.only):
            configs[run.name] = load_run_config(sweep, run, args.overrides)
            print(f"[{run.group}] {shlex.join(fit_command(sweep, run, out, args.overrides)[1:])}")
        warning = retain_warning(configs)
        if warning:
            print(warning)
        return 0
    if not args.collect:  # finished runs can be collected anywhere; new ones need what the file requires
        check_requirements(sweep.requires, f"Sweep {sweep.name} ({sweep.path})", "Run it on a machine with a CUDA GPU.")
    _, failed = run_and_collect(sweep, args, out, args.overrides)
    print((out / "results.md").read_text())
    print(f"Results in {out / 'results.md'} and {out / 'results.json'}; comparisons in {out / 'compare'}.")
    if failed:
        print(f"Failed: {', '.join(failed)} (logs in {out / 'logs'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
