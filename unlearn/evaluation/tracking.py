"""Evaluation inside ``fit``: the callbacks, the choice of the run's model, and the summary table.

The summary compares three models on SPEC's 14 numbers: the *target* (the epoch-0 evaluation,
before any update), the *retain* model (stored results, see :mod:`unlearn.evaluation.cache`) and
the *unlearned* model (the epoch that :class:`~unlearn.callbacks.selection.BestEpochSelection`
chose, which is the epoch saved as ``<run>/model``).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from unlearn.config.schema import Config, ConfigError
from unlearn.evaluation.results import SUMMARY_KEYS, EvalResult, format_table

log = logging.getLogger(__name__)


def _callbacks_module():
    try:
        from unlearn.callbacks import collapse, evaluation, selection
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            "unlearn.callbacks (the top-level callbacks/ folder) is importable only once the project is "
            "installed: run `pip install -e .` in the checkout.") from err
    return evaluation, collapse, selection


@dataclass
class FitEvaluation:
    """The evaluation callbacks of one run and what they found."""

    evaluation: object  # unlearn.callbacks.evaluation.TofuEvaluation
    selection: object  # unlearn.callbacks.selection.BestEpochSelection
    collapse: object  # unlearn.callbacks.collapse.UtilityCollapseStopping
    retain: EvalResult | None

    @property
    def callbacks(self) -> list:
        # Order matters: both readers look at the record the evaluation has just made.
        return [self.evaluation, self.selection, self.collapse]

    def has_selected_weights(self) -> bool:
        """Whether the selected epoch's weights were written (else the final ones are saved).

        Decided from the selection's state, not the file system, so every rank (other nodes do not
        see rank 0's disk) agrees on whether the final weights must be gathered.
        """
        saved, selected = self.selection.save_dir, self.selection.selected
        return selected is not None and saved is not None and self.selection.saved_epoch == selected["epoch"]

    def write_model(self, policy, tokenizer, model_dir: Path, save_model: Callable) -> None:
        """Make ``model_dir`` the selected epoch's model: the stored best weights, or ``policy``'s."""
        saved = self.selection.save_dir
        if self.has_selected_weights():
            if not saved.is_dir():
                raise FileNotFoundError(f"The selected epoch's weights should be in {saved}, which is missing; "
                                        "was the run folder changed during training?")
            shutil.rmtree(model_dir, ignore_errors=True)
            saved.rename(model_dir)
        else:
            save_model(policy, tokenizer, model_dir)
            if saved is not None:
                shutil.rmtree(saved, ignore_errors=True)

    def summary(self) -> dict:
        records = self.evaluation.records
        selected = self.selection.selected
        return {
            "target": _numbers(records[0]) if records else None,
            "retain": None if self.retain is None else self.retain.summary(),
            "retain_fluency": None if self.retain is None else self.retain.fluency(),
            "unlearned": None if selected is None else _numbers(selected),
            "selected_epoch": None if selected is None else selected["epoch"],
            "selection_rule": self.selection.rule,
            "selection_reason": self.selection.reason,
            "stopped_epoch": self.collapse.stopped_epoch,
            "stop_reason": self.collapse.reason,
            "forget_quality_reason": None if self.retain is not None else
            "no retain model results (give model.retain_path=...)",
            "history": [dict(r) for r in records],
        }


def _numbers(record: dict) -> dict:
    return {key: record[key] for key in SUMMARY_KEYS}


def setup_fit_evaluation(cfg: Config, assets, tokenizer, run_dir: Path) -> FitEvaluation | None:
    """The callbacks for ``cfg.eval`` (None when ``eval.enabled=false``); evaluates the retain model if not stored."""
    from unlearn.evaluation.job import build_evaluator, check_eval_config, evaluation_device, retain_results
    from unlearn.training.fit import save_model

    if not cfg.eval.enabled:
        return None
    check_eval_config(cfg)
    evaluation_mod, collapse_mod, selection_mod = _callbacks_module()
    evaluator = build_evaluator(cfg, assets.source, tokenizer)
    retain = retain_results(cfg, assets.retain, evaluator, evaluation_device(cfg))
    rule = cfg.eval.selection
    if retain is None and rule == "forget_quality":
        log.warning("No retain model, so no forget quality: the run keeps its last epoch (eval.selection=last). "
                    "Give model.retain_path=... to select by forget quality.")
        rule = "last"
    try:
        evaluation = evaluation_mod.TofuEvaluation(evaluator, cfg.eval.every_n_epochs, retain,
                                                   cfg.eval.num_logged_samples)
        selection = selection_mod.BestEpochSelection(
            evaluation, rule, cfg.eval.collapse_fraction, run_dir / "selected",
            lambda policy, out: save_model(policy, tokenizer, out, merge_lora=cfg.model.lora.merge))
        collapse = collapse_mod.UtilityCollapseStopping(evaluation, cfg.eval.collapse_fraction)
    except ValueError as err:
        raise ConfigError(f"eval: {err}") from err
    return FitEvaluation(evaluation, selection, collapse, retain)


def format_fit_summary(summary: dict) -> str:
    """Markdown: the target / retain / unlearned table, the selected epoch and why, and any early stop."""
    columns = {name: summary[name] or {} for name in ("target", "retain", "unlearned")}
    lines = ["## Evaluation", "", format_table(columns), "",
             f"Unlearned model = {summary['selection_reason']}."]
    if summary["retain"] is None:
        lines.append(f"Forget quality is unavailable: {summary['forget_quality_reason']}.")
    if summary["stopped_epoch"] is not None:
        lines.append(f"Stopped early: {summary['stop_reason']}.")
    return "\n".join(lines) + "\n"
