"""``python -m unlearn grid``: the NPO paper's grid of losses x forget splits, run and collected.

    python -m unlearn grid --config experiment/tofu_llama2 --losses ga,npo,npo_rt --splits forget01,forget10

Each (loss, split) is one ``python -m unlearn fit`` subprocess (a subprocess, not a call, so that
a DDP run's launcher re-runs that ``fit`` command and not the whole grid) with the given
``--config`` files, the loss's paper settings (:func:`paper_loss_settings`, read from
``configs/loss/``), the split and any ``key=value`` overrides, in ``<out>/<loss>_<split>/``. A run
with a ``summary.json`` is skipped; an interrupted one is resumed from its checkpoint.
``<out>/grid.md`` and ``<out>/grid.csv`` collect forget quality, model utility, forget ROUGE-L and
the selected epoch of every run.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from unlearn.config.loading import configs_dir, read_config_file
from unlearn.experiments.runs import continuation, is_finished
from unlearn.losses import LOSSES
from unlearn.names import FORGET_QUALITY, LOSS_NAMES, MODEL_UTILITY, format_number, metric_key

PAPER_SPLITS = ("forget01", "forget05", "forget10")
COLUMNS = ("run", "loss", "forget split", "forget quality", "model utility", "forget ROUGE-L", "selected epoch",
           "steps", "status")


def paper_loss_file(loss: str, split: str) -> str:
    """The loss group file holding ``loss``'s paper settings on ``split``.

    ``loss/<loss>_<split>`` where the settings depend on the split (SimNPO's forget01 and forget05),
    else ``loss/<loss>``.
    """
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss '{loss}'; choose from {', '.join(LOSSES)}.")
    per_split = f"loss/{loss}_{split}"
    return per_split if (configs_dir() / f"{per_split}.yaml").is_file() else f"loss/{loss}"


def paper_loss_settings(loss: str, split: str) -> dict:
    """The ``loss.*`` values of the paper's TOFU runs for ``loss`` on ``split``, as ``configs/loss/`` holds them.

    The NPO paper's settings (docs/definitions.md, "Paper settings": β = 0.1, every coefficient 1.0, for the
    hyperparameters the strategy takes) and SimNPO's authors' per-split ones; the YAML comments
    say where each value comes from.
    """
    return dict(read_config_file(paper_loss_file(loss, split))["loss"])


def fit_command(configs: list[str], loss: str, split: str, out: Path, overrides: list[str]) -> list[str]:
    settings = [f"loss.{k}={v}" for k, v in paper_loss_settings(loss, split).items()]
    command = [sys.executable, "-m", "unlearn", "fit"]
    for name in configs:
        command += ["--config", name]
    return command + [*settings, f"data.forget_split={split}", f"run.output_dir={out}", f"run.name={loss}_{split}",
                      *overrides]


def run_grid(configs: list[str], losses: list[str], splits: list[str], out: Path, overrides: list[str]) -> list[dict]:
    """Run every (loss, split) not finished yet, then collect the table. Returns its rows."""
    out.mkdir(parents=True, exist_ok=True)
    status = {}
    for split in splits:
        for loss in losses:
            name, run_dir = f"{loss}_{split}", out / f"{loss}_{split}"
            if is_finished(run_dir):
                print(f"[grid] {name}: finished earlier, skipped", flush=True)
                status[name] = "done (earlier)"
                continue
            command = fit_command(configs, loss, split, out, overrides) + continuation(run_dir)
            print(f"[grid] {name}: {' '.join(command[1:])}", flush=True)
            code = subprocess.run(command).returncode
            status[name] = "done" if code == 0 else f"failed (exit {code})"
    rows = collect(out, losses, splits, status)
    write_tables(rows, out)
    return rows


def collect(out: Path, losses: list[str], splits: list[str], status: dict | None = None) -> list[dict]:
    """One row per (loss, split) from its ``summary.json`` (blank numbers where it has none)."""
    rows = []
    for split in splits:
        for loss in losses:
            name = f"{loss}_{split}"
            row = dict.fromkeys(COLUMNS, "")
            row.update({"run": name, "loss": loss, "forget split": split,
                        "status": (status or {}).get(name, "not run")})
            path = out / name / "summary.json"
            if path.is_file():
                summary = json.loads(path.read_text())
                row["steps"] = summary.get("steps", "")
                evaluation = summary.get("evaluation") or {}
                numbers = evaluation.get("unlearned") or {}
                row["forget quality"] = numbers.get(FORGET_QUALITY, "")
                row["model utility"] = numbers.get(MODEL_UTILITY, "")
                row["forget ROUGE-L"] = numbers.get(metric_key("forget", "rouge_l"), "")
                row["selected epoch"] = evaluation.get("selected_epoch", "")
                if row["status"] == "not run":
                    row["status"] = "done"
            rows.append(row)
    return rows


def _cell(value, digits: str = ".3f") -> str:
    return format_number(value, digits) if isinstance(value, float) else str(value)


def write_tables(rows: list[dict], out: Path) -> None:
    with open(out / "grid.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    # Forget quality is a p-value spanning orders of magnitude: 3 significant digits, as in compare.
    lines += ["| " + " | ".join(_cell(row[c], "g" if c == "forget quality" else ".3f") for c in COLUMNS) + " |"
              for row in rows]
    (out / "grid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearn grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[], metavar="FILE", help="as for fit; may repeat")
    parser.add_argument("--losses", default=",".join(LOSS_NAMES), help="comma-separated (default: all nine)")
    parser.add_argument("--splits", default=",".join(PAPER_SPLITS), help="comma-separated (default: forget01,05,10)")
    parser.add_argument("--out", default="runs/grid", help="folder of the runs and of grid.md / grid.csv")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="passed to every fit")
    args = parser.parse_args(argv)
    losses, splits = args.losses.split(","), args.splits.split(",")
    unknown = [name for name in losses if name not in LOSSES]
    if unknown:
        print(f"error: unknown loss(es) {unknown}; choose from {', '.join(LOSSES)}", file=sys.stderr)
        return 2
    rows = run_grid(args.config, losses, splits, Path(args.out), args.overrides)
    return 0 if all(row["status"].startswith("done") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
