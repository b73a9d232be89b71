"""One policy for the fit runs of an experiment (sweep, reproduce): skip the finished, continue the interrupted.

A run is finished when its ``summary.json`` exists (``fit`` writes it last, atomically). An
interrupted run with a checkpoint continues from it (``run.resume=true``, to the weights an
uninterrupted run would reach); one that stopped before its first checkpoint starts again in its
folder (``run.overwrite=true``).
"""

from __future__ import annotations

from pathlib import Path

from unlearn.names import CHECKPOINT_DIR, LAST, SUMMARY_FILE


def is_finished(run_dir: Path) -> bool:
    return (Path(run_dir) / SUMMARY_FILE).is_file()


def continuation(run_dir: Path) -> list[str]:
    """The overrides that start the run in ``run_dir``, or continue it where it stopped."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT_DIR / LAST).is_file():
        return ["run.resume=true"]
    if run_dir.exists():
        return ["run.overwrite=true"]
    return []
