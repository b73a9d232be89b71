"""Figures of unlearning runs: forget quality against model utility, and utility over training steps.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas and never through ``pyplot``, so
they render on machines without a display and never touch a user's interactive backend.
``compare`` saves them as PNG files; the evaluation callback sends them to TensorBoard.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from unlearn.files import atomic_write
from unlearn.names import FORGET_QUALITY as FQ
from unlearn.names import MODEL_UTILITY as MU
from unlearn.names import metric_key

DISTINCT = metric_key("forget", "distinct_2")


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def trajectory_figure(histories: Mapping[str, Sequence[dict]], title: str | None = None,
                      selected: Mapping[str, int | None] | None = None,
                      references: Mapping[str, tuple[float, float]] | None = None) -> Figure:
    """Forget quality (log scale) against model utility, model utility against step and, when the
    records have it, the forget split's distinct-2 (fluency of its generations) against step.

    Args:
        histories: ``{label: records}``, one trajectory per label; a record is an evaluation as
            kept in ``summary.json``'s ``evaluation.history`` (``epoch``, ``step`` and the metrics).
            Epochs without a forget quality (no retain model) are left out of the first panel.
        title: Shown above both panels.
        selected: ``{label: epoch}`` of each run's selected model, drawn as a star.
        references: ``{label: (model utility, forget quality)}`` of fixed models (the retain model),
            drawn as crosses on the first panel.
    """
    fluent = any(_finite(r.get(DISTINCT)) for records in histories.values() for r in records)
    fig = Figure(figsize=(16 if fluent else 11, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3 if fluent else 2)
    quality_ax, step_ax = axes[:2]
    for label, records in histories.items():
        color = None
        points = [(r[MU], r[FQ], r["epoch"]) for r in records if _finite(r.get(MU)) and _finite(r.get(FQ))
                  and r[FQ] > 0]
        if points:
            utility, quality, epochs = zip(*points)
            (line,) = quality_ax.plot(utility, quality, marker="o", markersize=3, linewidth=1.2, label=label)
            color = line.get_color()
            # The starting point (before any update) and the end make the direction of travel readable.
            quality_ax.plot(utility[0], quality[0], marker="s", markersize=6, color=color, markerfacecolor="none")
            chosen = (selected or {}).get(label)
            if chosen in epochs:
                i = epochs.index(chosen)
                quality_ax.plot(utility[i], quality[i], marker="*", markersize=11, color=color)
            quality_ax.annotate(f"{epochs[-1]}", (utility[-1], quality[-1]), fontsize=7, color=color,
                                xytext=(3, 3), textcoords="offset points")
        steps = [(r["step"], r[MU]) for r in records if _finite(r.get(MU))]
        if steps:
            (line,) = step_ax.plot(*zip(*steps), marker="o", markersize=3, linewidth=1.2, label=label, color=color)
            color = line.get_color()
        distinct = [(r["step"], r[DISTINCT]) for r in records if _finite(r.get(DISTINCT))]
        if fluent and distinct:
            axes[2].plot(*zip(*distinct), marker="o", markersize=3, linewidth=1.2, color=color)
    for label, (utility, quality) in (references or {}).items():
        if _finite(utility) and _finite(quality) and quality > 0:
            quality_ax.plot(utility, quality, marker="x", markersize=8, color="black")
            quality_ax.annotate(label, (utility, quality), fontsize=7, xytext=(-4, -11), textcoords="offset points",
                                ha="right")
    quality_ax.set_yscale("log")
    quality_ax.set_xlabel("model utility")
    quality_ax.set_ylabel("forget quality (KS-test p-value, log)")
    quality_ax.set_title("forget quality vs model utility\n(square: before unlearning; star: selected epoch; "
                         "number: last epoch)",
                         fontsize=9)
    step_ax.set_xlabel("training step")
    step_ax.set_ylabel("model utility")
    step_ax.set_title("model utility over training", fontsize=9)
    if fluent:
        axes[2].set_xlabel("training step")
        axes[2].set_ylabel("forget-split distinct-2")
        axes[2].set_ylim(0, 1.05)
        axes[2].set_title("fluency of forget-set answers (1: no repeated bigram)", fontsize=9)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    if len(histories) > 1 or any(histories.values()):
        step_ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def figure_to_rgb(fig: Figure) -> np.ndarray:
    """The rendered figure as an ``(H, W, 3)`` uint8 array (for TensorBoard's ``add_image``)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as a PNG file (parent folders created), whole or not at all (``unlearn.files``)."""
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=dpi))
    return path
