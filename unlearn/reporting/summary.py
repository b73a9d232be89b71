"""What a finished ``fit`` prints and writes as ``summary.md``: NLL before/after and the evaluation table.

The summary compares three models on the benchmark's numbers (docs/evaluation.md: TOFU's 14 and the
membership-inference AUCs, or MUSE's VerbMem, KnowMem and PrivLeak): the *target*
(the epoch-0 evaluation, before any update), the *retain* model (stored results, see
:mod:`unlearn.evaluation.cache`) and the *unlearned* model (the epoch that
:class:`~unlearn.callbacks.selection.BestEpochSelection` chose, which is the epoch saved as
``<run>/model``).
"""

from __future__ import annotations

from unlearn.evaluation.results import format_table
from unlearn.names import format_number


def format_fit_summary(summary: dict) -> str:
    """Markdown: the target / retain / unlearned table, the selected epoch and why, and any early stop."""
    columns = {name: summary[name] or {} for name in ("target", "retain", "unlearned")}
    lines = ["## Evaluation", "", format_table(columns, summary.get("benchmark", "tofu")), "",
             f"Unlearned model = {summary['selection_reason']}."]
    if summary["retain"] is None:
        lines.append(f"Unavailable without a retain model: {summary['forget_quality_reason']}.")
    for reason in summary.get("unavailable") or []:
        lines.append(f"{reason}.")
    if summary["stopped_epoch"] is not None:
        lines.append(f"Stopped early: {summary['stop_reason']}.")
    intervals = summary.get("question_ci") or {}
    if intervals:
        spans = [f"{name} [{format_number(stat['ci'][0], '.3g')}, {format_number(stat['ci'][1], '.3g')}]"
                 for name, stat in intervals.items()]
        lines.append(f"95% intervals over the questions (bootstrap; how finely this run measures, not how much a "
                     f"repeat would move): {', '.join(spans)}.")
    return "\n".join(lines) + "\n"


def format_summary(summary: dict) -> str:
    """The text ``fit`` prints when it ends: NLL per split before and after, the evaluation, warnings, paths."""
    forget = summary.get("forget_set") or summary["forget_split"]  # the split, or the user's forget file
    lines = [f"\nUnlearning finished: {summary['loss']} on {forget} "
             f"({summary['steps']} steps, {summary['seconds']} s)",
             f"Mean answer NLL per token, before unlearning and after epoch {summary['nll_after_epoch']} "
             "(the epoch saved as the model):",
             f"{'split':<8} {'NLL before':>11} {'NLL after':>10} {'change':>8}"]
    for split, before in summary["nll_before"].items():
        after = summary["nll_after"].get(split, float("nan"))
        lines.append(f"{split:<8} {before:>11.3f} {after:>10.3f} {after / before - 1:>+8.0%}")
    if summary.get("evaluation"):
        lines.append("\n" + format_fit_summary(summary["evaluation"]))
    for warning in data_warnings(summary.get("data") or {}):
        lines.append(f"Warning: {warning}")
    lines.append(f"Unlearned model: {summary['model_dir']}")
    lines.append(f"TensorBoard:     tensorboard --logdir {summary['run_dir']}")
    return "\n".join(lines)


def data_warnings(report: dict) -> list[str]:
    """One line per data problem worth repeating under the results (the full warning is logged earlier)."""
    lines = []
    cut = {name: n for name, n in report.get("truncated", {}).items() if n}
    if cut:
        lines.append(", ".join(f"{n} {name}" for name, n in cut.items()) + " examples were cut to "
                     f"data.max_length={report.get('max_length')}; raise it to train on whole answers.")
    if report.get("forget_in_retain"):
        lines.append(f"{report['forget_in_retain']} forget rows are also in the retain set.")
    return lines
