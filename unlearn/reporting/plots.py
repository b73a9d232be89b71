"""Figures of unlearning runs: the benchmark's forget measure against its utility, and utility over training steps.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas and never through ``pyplot``, so
they render on machines without a display and never touch a user's interactive backend.
``compare`` saves them as PNG files; the evaluation callback sends them to TensorBoard. What each
benchmark draws (keys, axis labels, TOFU's log scale) is :mod:`unlearn.reporting.display`'s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from unlearn.files import atomic_write
from unlearn.names import BENCHMARKS, BenchmarkKeys
from unlearn.reporting.display import display_of


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def trajectory_figure(histories: Mapping[str, Sequence[dict]], title: str | None = None,
                      selected: Mapping[str, int | None] | None = None,
                      references: Mapping[str, tuple[float, float]] | None = None,
                      spread: Mapping[str, Sequence[dict]] | None = None,
                      selected_points: Mapping[str, tuple[dict, dict]] | None = None,
                      benchmark: BenchmarkKeys = BENCHMARKS["tofu"]) -> Figure:
    """The benchmark's forget measure against its utility (TOFU: forget quality, log scale, against model
    utility; MUSE: VerbMem against KnowMem retain; multiple choice: forget against general accuracy), utility
    against step, for MUSE PrivLeak against KnowMem retain, and, when the records have it, the forget
    generations' distinct-2 (fluency) against step.

    Args:
        histories: ``{label: records}``, one trajectory per label; a record is an evaluation as
            kept in ``summary.json``'s ``evaluation.history`` (``epoch``, ``step`` and the metrics).
            Epochs without the forget measure (TOFU without a retain model) are left out of the first panel.
        title: Shown above the panels.
        selected: ``{label: epoch}`` of each run's selected model, drawn as a star.
        references: ``{label: (utility, forget measure)}`` of fixed models (the retain model),
            drawn as crosses on the first panel.
        spread: ``{label: records}`` of standard deviations, epoch by epoch, for labels whose
            records are means over seeds (:func:`unlearn.reporting.stats.mean_history`): drawn as
            error bars of ±1 sd (on TOFU's log axis cut at a tenth of the mean, which a larger sd would
            take below zero).
        selected_points: ``{label: (mean record, sd record)}`` of the selected epochs of a group of
            seeded runs (their epochs differ), drawn as a star with error bars instead of ``selected``.
        benchmark: The runs' benchmark (:data:`unlearn.names.BENCHMARKS`).
    """
    shown = display_of(benchmark)
    utility, forget = shown.utility.key, shown.forget.key
    distinct = shown.distinct.key if shown.distinct else None
    fluent = distinct is not None and any(_finite(r.get(distinct)) for records in histories.values() for r in records)
    count = 2 + (shown.second is not None) + fluent
    fig = Figure(figsize=(11 + 5 * (count - 2), 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, count))
    forget_ax, step_ax = axes[:2]
    second_ax = axes[2] if shown.second else None
    for label, records in histories.items():
        errors = {r["epoch"]: r for r in (spread or {}).get(label, ())}
        chosen, star = (selected or {}).get(label), (selected_points or {}).get(label)
        color = _trade_off(forget_ax, records, utility, forget, shown.log_forget, errors, chosen, star, None, label)
        color = _over_steps(step_ax, records, utility, errors, color, label)
        if second_ax is not None:
            _trade_off(second_ax, records, utility, shown.second.key, False, errors, chosen, star, color)
        if fluent:
            _over_steps(axes[-1], records, distinct, errors, color)
    for label, (x, y) in (references or {}).items():
        if _finite(x) and _finite(y) and (y > 0 or not shown.log_forget):
            forget_ax.plot(x, y, marker="x", markersize=8, color="black")
            forget_ax.annotate(label, (x, y), fontsize=7, xytext=(-4, -11), textcoords="offset points", ha="right")
    if shown.log_forget:
        forget_ax.set_yscale("log")
    forget_ax.set_xlabel(shown.utility_axis)
    forget_ax.set_ylabel(shown.forget_axis)
    forget_ax.set_title(f"{shown.forget.title} vs {shown.utility.title}\n(square: before unlearning; star: selected "
                        "epoch; number: last epoch)", fontsize=9)
    step_ax.set_xlabel("training step")
    step_ax.set_ylabel(shown.utility.title)
    step_ax.set_title(f"{shown.utility.title} over training", fontsize=9)
    if second_ax is not None:
        # PrivLeak compares the model's membership AUC with the retain model's: 0 is the retain model.
        second_ax.axhline(0, color="black", linestyle="--", linewidth=0.8)
        second_ax.set_xlabel(shown.utility_axis)
        second_ax.set_ylabel(f"{shown.second.title} (%; 0: retain model)")
        second_ax.set_title(f"{shown.second.title} vs {shown.utility.title}", fontsize=9)
    if fluent:
        axes[-1].set_xlabel("training step")
        axes[-1].set_ylabel(shown.distinct.title)
        axes[-1].set_ylim(0, 1.05)
        axes[-1].set_title("fluency of forget-set answers (1: no repeated bigram)", fontsize=9)
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    if len(histories) > 1 or any(histories.values()):
        step_ax.legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title + ("\n(runs over seeds: mean, bars ±1 sd)" if spread or selected_points else ""),
                     fontsize=10)
    return fig


def _trade_off(ax, records: Sequence[dict], x_key: str, y_key: str, log: bool, errors: dict, chosen, star,
               color=None, label: str | None = None):
    """One run's trajectory of ``y_key`` against ``x_key``: start (square), selected epoch (star), last epoch
    (its number); returns the line's colour (``color`` when nothing was drawn)."""
    points = [(r[x_key], r[y_key], r["epoch"]) for r in records if _finite(r.get(x_key)) and _finite(r.get(y_key))
              and (r[y_key] > 0 or not log)]
    if not points:
        return color
    xs, ys, epochs = zip(*points)
    (line,) = ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.2, label=label, color=color)
    color = line.get_color()
    # The starting point (before any update) and the end make the direction of travel readable.
    ax.plot(xs[0], ys[0], marker="s", markersize=6, color=color, markerfacecolor="none")
    if errors:
        _error_bars(ax, xs, ys, [errors.get(e, {}) for e in epochs], color, x_key, y_key, log)
    if star is not None:
        mean, sd = star
        if _finite(mean.get(x_key)) and _finite(mean.get(y_key)) and (mean[y_key] > 0 or not log):
            ax.plot(mean[x_key], mean[y_key], marker="*", markersize=11, color=color)
            _error_bars(ax, [mean[x_key]], [mean[y_key]], [sd], color, x_key, y_key, log, alpha=0.9)
    elif chosen in epochs:
        i = epochs.index(chosen)
        ax.plot(xs[i], ys[i], marker="*", markersize=11, color=color)
    ax.annotate(f"{epochs[-1]}", (xs[-1], ys[-1]), fontsize=7, color=color, xytext=(3, 3), textcoords="offset points")
    return color


def _over_steps(ax, records: Sequence[dict], key: str, errors: dict, color, label: str | None = None):
    """``key`` against training step (±1 sd bars for means over seeds); returns the line's colour."""
    steps = [(r["step"], r[key], errors.get(r["epoch"], {}).get(key)) for r in records if _finite(r.get(key))]
    if not steps:
        return color
    x, y, err = zip(*steps)
    (line,) = ax.plot(x, y, marker="o", markersize=3, linewidth=1.2, label=label, color=color)
    if errors:
        ax.errorbar(x, y, yerr=[e if _finite(e) else 0.0 for e in err], fmt="none", ecolor=line.get_color(),
                    alpha=0.5, capsize=2)
    return line.get_color()


def _error_bars(ax, xs: Sequence[float], ys: Sequence[float], sds: Sequence[dict], color, x_key: str, y_key: str,
                log: bool, alpha: float = 0.5) -> None:
    """±1 sd bars on a trade-off panel; on a log axis the lower bar ends at a tenth of the mean."""
    x_sd = [sd.get(x_key) if _finite(sd.get(x_key)) else 0.0 for sd in sds]
    y_sd = [sd.get(y_key) if _finite(sd.get(y_key)) else 0.0 for sd in sds]
    lower = [min(e, 0.9 * y) for e, y in zip(y_sd, ys)] if log else y_sd
    ax.errorbar(xs, ys, xerr=x_sd, yerr=[lower, y_sd], fmt="none", ecolor=color, alpha=alpha, capsize=2)


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
