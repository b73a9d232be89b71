"""``python -m unlearn sweep``: the runs behind docs/results.md (the NPO paper's findings, built-in benchmark).

Groups of ``fit`` runs, each run a ``python -m unlearn fit`` subprocess with its own log:

- ``forget01``, ``forget05``, ``forget10``: every loss strategy on that split, built-in defaults;
- ``forget50``: the same on half the authors, from a benchmark generated with
  ``data.builtin.forget_percents=[1,5,10,50]`` (a different benchmark, so its own target and
  retain models, trained and cached on first use);
- ``long``: gradient ascent and NPO on forget10 for ``--long-epochs`` epochs with the collapse stop
  off (``eval.collapse_fraction=0``), to show how utility decays over steps;
- ``beta``: the strategies that take a β (DPO and the NPO family) again on forget10 and forget50 at
  the NPO paper's TOFU value β = 0.1 instead of the built-in 0.5, which was chosen for retain NLL
  (docs/builtin.md); the others have no β, so this is the one setting where they differ.

A run whose ``summary.json`` exists is skipped, so an interrupted sweep continues where it
stopped. Target and retain models are prepared one split at a time before any run starts, so
parallel runs never train the same model at once. Each group ends with ``python -m unlearn
compare`` of its finished runs in ``<out>/compare/<group>/``; ``<out>/compare/overview.md`` then
puts every finished run of the split and β groups in two strategy × setting tables (finding 2 at a
glance), and ``<out>/commands.txt`` lists every command run.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from unlearn.config.loading import read_config_file
from unlearn.experiments.runs import continuation, is_finished
from unlearn.names import BETA_LOSSES, LOSS_NAMES, format_number, metric_key
from unlearn.names import FORGET_QUALITY as FQ

SPLITS = ("forget01", "forget05", "forget10", "forget50")
LARGE_BENCHMARK = "data.builtin.forget_percents=[1,5,10,50]"  # the default benchmark has no forget50
# The losses that take a β (checked against the loss classes' hparam_names() when unlearn.losses is
# imported; the sweep itself stays free of torch).
BETA_STRATEGIES = BETA_LOSSES
# The NPO paper's TOFU β (0.1), as configs/loss/npo.yaml holds it (its only copy); the β group gives it to
# every strategy in BETA_STRATEGIES, SimNPO included, so that β is the one setting that differs from the default runs.
PAPER_BETA = read_config_file("loss/npo")["loss"]["beta"]
# Share of forget-set generations that loop (evaluation's fluency measure).
REPETITION = metric_key("forget", "repetition")


@dataclass(frozen=True)
class Run:
    """One ``fit`` run of the sweep."""

    group: str
    name: str
    overrides: tuple[str, ...]

    def override(self, key: str) -> str | None:
        """The value the run gives ``key`` (e.g. ``loss.name``), or None."""
        return next((o.split("=", 1)[1] for o in self.overrides if o.startswith(f"{key}=")), None)

    @property
    def setting(self) -> str | None:
        """The overview column of the run (its forget split, and β when the run sets one); None for ``long``."""
        if self.group == "long":
            return None
        beta = self.override("loss.beta")
        return self.override("data.forget_split") + (f" β={beta}" if beta else "")

    @property
    def benchmark(self) -> tuple[str, ...]:
        """Overrides that choose the benchmark and the forget split (what ``finetune`` needs)."""
        return tuple(o for o in self.overrides if o.startswith(("data.builtin.", "data.forget_split=")))


def plan(long_epochs: int = 40) -> list[Run]:
    """Every run of the full sweep, in the order they start."""
    runs = []
    for split in SPLITS:
        extra = (LARGE_BENCHMARK,) if split == "forget50" else ()
        runs += [Run(split, f"{split}_{loss}", (f"loss.name={loss}", f"data.forget_split={split}", *extra))
                 for loss in LOSS_NAMES]
    for loss in ("ga", "npo"):
        runs.append(Run("long", f"long_{loss}", (f"loss.name={loss}", "data.forget_split=forget10",
                                                 f"trainer.max_epochs={long_epochs}", "eval.collapse_fraction=0",
                                                 "eval.every_n_epochs=2")))
    for split in ("forget10", "forget50"):
        extra = (LARGE_BENCHMARK,) if split == "forget50" else ()
        runs += [Run("beta", f"{split}_{loss}_beta{PAPER_BETA}",
                     (f"loss.name={loss}", f"data.forget_split={split}", *extra, f"loss.beta={PAPER_BETA}"))
                 for loss in BETA_STRATEGIES]
    return runs


def select(runs: list[Run], patterns: list[str]) -> list[Run]:
    """Runs whose group or name matches one of the shell-style ``patterns`` (all when none given)."""
    if not patterns:
        return runs
    chosen = [r for r in runs if any(fnmatch.fnmatch(r.group, p) or fnmatch.fnmatch(r.name, p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"no run matches {patterns}; groups: {sorted({r.group for r in runs})}")
    return chosen


def fit_command(run: Run, out: Path, common: list[str], configs: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "unlearn", "fit", *configs, *run.overrides, *common, f"run.output_dir={out}",
            f"run.name={run.name}", "trainer.enable_progress_bar=false"]


def _run_logged(cmd: list[str], log_path: Path, env: dict, commands: Path) -> int:
    with commands.open("a") as f:
        f.write(shlex.join(cmd) + "\n")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env).returncode


def sweep(runs: list[Run], out: Path, common: list[str], jobs: int = 1, threads: int | None = None,
          configs: list[str] = (), everything: list[Run] | None = None) -> dict[str, int]:
    """Run ``runs`` (skipping finished ones) ``jobs`` at a time, then compare each group.

    Args:
        common: Overrides given to every run (e.g. ``run.cache_dir=/tmp/uc``).
        configs: ``--config`` arguments of every run (e.g. ``["--config", "tests/configs/tiny.yaml"]``).
        everything: The full plan: each group's comparison holds all its finished runs, not only ``runs``.
        threads: ``OMP_NUM_THREADS`` of each run; on shared cores one thread per run is fastest.

    Returns:
        ``{run name: exit status}`` of the runs started (0 for success).
    """
    out.mkdir(parents=True, exist_ok=True)
    commands, env = out / "commands.txt", dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    todo = [r for r in runs if not is_finished(out / r.name)]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already finished; {len(todo)} to run, {jobs} at a time.")
    # Models first, one benchmark at a time, so parallel runs never train the same model.
    for benchmark in dict.fromkeys(r.benchmark for r in todo):
        cmd = [sys.executable, "-m", "unlearn", "finetune", *configs, *benchmark, *common]
        name = re.sub(r"[^\w.-]+", "_", "_".join(o.split("=", 1)[1] for o in benchmark))
        if _run_logged(cmd, out / "logs" / f"finetune_{name}.log", env, commands):
            raise SystemExit(f"preparing models failed: {shlex.join(cmd)}")

    def one(run: Run) -> tuple[str, int]:
        start = time.time()
        # An interrupted earlier attempt continues from its checkpoint (unlearn.experiments.runs).
        cmd = fit_command(run, out, [*common, *continuation(out / run.name)], configs)
        status = _run_logged(cmd, out / "logs" / f"{run.name}.log", env, commands)
        print(f"{run.name}: {'done' if status == 0 else f'FAILED ({status})'} in {time.time() - start:.0f} s",
              flush=True)
        return run.name, status

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        statuses = dict(pool.map(one, todo))
    collect(out, list(dict.fromkeys(r.group for r in runs)), everything or runs)
    return statuses


def collect(out: Path, groups: list[str], everything: list[Run]) -> None:
    """Compare each group's finished runs into ``<out>/compare/<group>/`` and write the overview."""
    commands = out / "commands.txt"
    for group in groups:
        finished = [out / r.name for r in everything
                    if r.group == group and is_finished(out / r.name)]
        if finished:
            from unlearn.reporting.compare import compare

            # The sweep's own folder, redrawn at every collect as more runs finish.
            compare(finished, out / "compare" / group, title=f"{group}: {len(finished)} runs", overwrite=True)
            with commands.open("a") as f:
                f.write(shlex.join([sys.executable, "-m", "unlearn", "compare", *map(str, finished), "--out",
                                    str(out / "compare" / group), "--overwrite"]) + "\n")
    if any(r.setting for r in everything):
        (out / "compare").mkdir(parents=True, exist_ok=True)
        (out / "compare" / "overview.md").write_text(overview(out, everything))


def overview(out: Path, everything: list[Run], floor: float | None = None) -> str:
    """Markdown: the finished runs under ``out`` as strategy × setting tables.

    The first table holds, per run, the best forget quality among evaluated epochs that kept ``floor`` ×
    the starting model utility (``compare``'s last column) and that epoch's forget-set repetition rate,
    since a forget set can also be "forgotten" by answering it in loops; the second the selected epoch's
    forget quality and model utility relative to the start. "(no β)": the strategy takes no β, so the β
    column would repeat the default run. Blank: not run (yet).
    """
    from unlearn.reporting.compare import UTILITY_FLOOR, best_within_utility, load_run, selected_epoch

    floor = UTILITY_FLOOR if floor is None else floor
    settings = list(dict.fromkeys(r.setting for r in everything if r.setting))
    cells = {}  # (strategy, setting) -> (best-within-floor cell, selected cell)
    targets = {}
    for run in everything:
        if not run.setting or not is_finished(out / run.name):
            continue
        evaluation = load_run(out / run.name)["evaluation"]
        history = evaluation["history"]
        targets.setdefault(run.setting, format_number(history[0].get(FQ), "g"))
        best = best_within_utility(history, floor)
        chosen, ratio = selected_epoch(evaluation)
        cells[run.override("loss.name"), run.setting] = (
            "none" if best is None else f"{format_number(best[FQ], 'g')} (ep {best['epoch']}, "
                                        f"rep {format_number(best.get(REPETITION), '.2f')})",
            f"{format_number(chosen.get(FQ), 'g')} @ {format_number(ratio, '.2f')}×")
    strategies = list(dict.fromkeys(r.override("loss.name") for r in everything if r.setting))
    takes_beta = {r.override("loss.name") for r in everything if r.override("loss.beta")}

    def table(which: int) -> list[str]:
        lines = ["| strategy | " + " | ".join(settings) + " |", "|---|" + "---:|" * len(settings),
                 "| target (before unlearning) | " + " | ".join(targets.get(s, "") for s in settings) + " |"]
        for loss in strategies:
            row = [cells[loss, s][which] if (loss, s) in cells
                   else "(no β)" if "β=" in s and loss not in takes_beta else "" for s in settings]
            lines.append(f"| {loss} | " + " | ".join(row) + " |")
        return lines

    return "\n".join([
        "# Sweep overview", "",
        f"Best forget quality among evaluated epochs whose model utility stayed at least {floor:g}× the run's "
        "starting utility, with that epoch and the share of its forget-set answers that loop (rep; 0 for the "
        "target, 1 for gibberish; none: no epoch kept the utility):", "", *table(0), "",
        "The run's selected epoch (its saved model): forget quality @ model utility relative to the start:",
        "", *table(1), "",
        "Retain model: forget quality 1 in every column. (no β): the strategy takes no β; its default run "
        "is the comparison. Blank: not run.", ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearn sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("patterns", nargs="*", metavar="GROUP_OR_RUN",
                        help="groups (forget01, forget05, forget10, forget50, long, beta) or run names, shell patterns "
                             "allowed (e.g. 'forget50_*npo*'); default: everything")
    parser.add_argument("--out", default="runs/sweep", help="folder of the runs, logs and comparisons")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of each run")
    parser.add_argument("--long-epochs", type=int, default=40, help="epochs of the long GA and NPO runs")
    parser.add_argument("--set", action="append", default=[], metavar="key=value",
                        help="an override for every run, e.g. --set run.cache_dir=/tmp/uc (may repeat)")
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="a config file for every run, before the sweep's overrides (may repeat)")
    parser.add_argument("--list", action="store_true", help="print the commands and exit")
    parser.add_argument("--collect", action="store_true",
                        help="run nothing: only rewrite the comparisons and overview of the finished runs")
    args = parser.parse_args(argv)
    everything = plan(args.long_epochs)
    runs = select(everything, args.patterns)
    out, configs = Path(args.out), [arg for name in args.config for arg in ("--config", name)]
    if args.list:
        for run in runs:
            print(f"[{run.group}] {shlex.join(fit_command(run, out, args.set, configs))}")
        return 0
    if args.collect:
        if not out.is_dir():
            raise SystemExit(f"{out} does not exist: nothing to collect (give the --out of an earlier sweep).")
        collect(out, list(dict.fromkeys(r.group for r in runs)), everything)
        print(f"Comparisons in {out / 'compare'}; overview in {out / 'compare' / 'overview.md'}.")
        return 0
    statuses = sweep(runs, out, args.set, args.jobs, args.threads, configs, everything)
    failed = [name for name, status in statuses.items() if status]
    print(f"Comparisons in {out / 'compare'}; commands in {out / 'commands.txt'}.")
    if failed:
        print(f"Failed: {', '.join(failed)} (logs in {out / 'logs'})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
