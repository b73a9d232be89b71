"""``python -m unlearn grid``: the NPO paper's grid of losses x forget splits, run and collected.

    python -m unlearn grid --config experiment/tofu_llama2 --losses ga,npo,npo_rt --splits forget01,forget10

Each (loss, split) is one ``python -m unlearn fit`` subprocess (a subprocess, not a call, so that
a DDP run's launcher re-runs that ``fit`` command and not the whole grid) with the given
``--config`` files, the loss's paper settings (:func:`paper_loss_settings`), the split and any
``key=value`` overrides, in ``<out>/<loss>_<split>/``. A run with a ``summary.json`` is skipped;
an interrupted one is resumed from its checkpoint. ``<out>/grid.md`` and ``<out>/grid.csv``
collect forget quality, model utility, forget ROUGE-L and the selected epoch of every run.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

from unlearn.losses import LOSSES

PAPER_LOSSES = ("ga", "grad_diff", "kl", "idk", "dpo", "npo", "npo_rt", "npo_kl", "simnpo")
PAPER_SPLITS = ("forget01", "forget05", "forget10")
COLUMNS = ("run", "loss", "forget split", "forget quality", "model utility", "forget ROUGE-L", "selected epoch",
           "steps", "status")
# SimNPO's authors tuned beta per split (SPEC): 2.5 on forget05, 4.5 on forget10; forget01 takes forget05's.
SIMNPO_BETA = {"forget01": 2.5, "forget05": 2.5, "forget10": 4.5}


def paper_loss_settings(loss: str, split: str) -> dict:
    """The ``loss.*`` values of the NPO paper's TOFU runs (SPEC "Paper defaults") for ``loss`` on ``split``.

    beta = 0.1 and every coefficient 1.0, for the hyperparameters the strategy takes; SimNPO uses
    its authors' settings (c_npo 0.1375, c_rt 1, gamma 0, beta per split).
    """
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss '{loss}'; choose from {', '.join(LOSSES)}.")
    if loss == "simnpo":
        return {"name": loss, "beta": SIMNPO_BETA.get(split, 2.5), "gamma": 0.0, "c_npo": 0.1375, "c_rt": 1.0}
    taken = LOSSES[loss].hparam_names()
    settings = {"name": loss, **{k: 0.1 for k in ("beta",) if k in taken}}
    settings.update({k: 1.0 for k in ("c_forget", "c_npo", "c_rt", "c_kl") if k in taken})
    return settings


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
            if (run_dir / "summary.json").is_file():
                print(f"[grid] {name}: finished earlier, skipped", flush=True)
                status[name] = "done (earlier)"
                continue
            command = fit_command(configs, loss, split, out, overrides)
            if (run_dir / "checkpoints" / "last.ckpt").is_file():
                command.append("run.resume=true")  # an interrupted run continues where it stopped
            elif run_dir.exists():
                command.append("run.overwrite=true")  # it stopped before its first checkpoint
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
                row["forget quality"] = numbers.get("forget/forget_quality", "")
                row["model utility"] = numbers.get("utility/model_utility", "")
                row["forget ROUGE-L"] = numbers.get("forget/rouge_l", "")
                row["selected epoch"] = evaluation.get("selected_epoch", "")
                if row["status"] == "not run":
                    row["status"] = "done"
            rows.append(row)
    return rows


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if value and abs(value) < 1e-2 else f"{value:.3f}"
    return str(value)


def write_tables(rows: list[dict], out: Path) -> None:
    with open(out / "grid.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in COLUMNS) + " |" for row in rows]
    (out / "grid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearn grid", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", default=[], metavar="FILE", help="as for fit; may repeat")
    parser.add_argument("--losses", default=",".join(PAPER_LOSSES), help="comma-separated (default: all nine)")
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


def write_experiment_configs(folder: Path, prefix: str = "tofu_llama2") -> list[Path]:
    """The grid as tiny experiment files, ``<prefix>_<split>_<loss>.yaml``, to use with ``--config`` after the base."""
    written = []
    for split in PAPER_SPLITS:
        for loss in PAPER_LOSSES:
            path = folder / f"{prefix}_{split}_{loss}.yaml"
            settings = "\n".join(f"  {k}: {v}" for k, v in paper_loss_settings(loss, split).items())
            path.write_text(f"# {loss} on TOFU {split}, paper settings "
                            "(written by unlearn.experiments.grid.write_experiment_configs).\n"
                            f"# python -m unlearn fit --config experiment/{prefix} --config experiment/{path.stem}\n"
                            f"loss:\n{settings}\ndata:\n  forget_split: {split}\nrun:\n  name: {path.stem}\n")
            written.append(path)
    return written


if __name__ == "__main__":
    sys.exit(main())
