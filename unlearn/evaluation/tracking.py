"""Evaluation inside ``fit``: the callbacks, what they found, and the choice of the run's model.

:func:`unlearn.reporting.summary.format_fit_summary` turns :meth:`FitEvaluation.summary` into the
target / retain / unlearned table.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable


from unlearn.errors import ConfigError
from unlearn.files import install_folder, recover_folder
from unlearn.names import BENCHMARKS, BenchmarkKeys, is_fluency_key

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

    evaluation: object  # unlearn.callbacks.evaluation.BenchmarkEvaluation
    selection: object  # unlearn.callbacks.selection.BestEpochSelection
    collapse: object  # unlearn.callbacks.collapse.UtilityCollapseStopping
    retain: object | None  # the retain model's result (EvalResult, MuseResult...)
    benchmark: BenchmarkKeys = BENCHMARKS["tofu"]

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
            recover_folder(saved)  # a crash inside the selection's swap leaves the last good copy aside
            if not saved.is_dir():
                raise FileNotFoundError(f"The selected epoch's weights should be in {saved}, which is missing; "
                                        "was the run folder changed during training?")
            install_folder(saved, model_dir, replace=True)  # a model_dir already there stays whole until swapped
        else:
            save_model(policy, tokenizer, model_dir)
            if saved is not None:
                shutil.rmtree(saved, ignore_errors=True)

    def summary(self) -> dict:
        records = self.evaluation.records
        selected = self.selection.selected
        return {
            "benchmark": self.benchmark.name,
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
            # What the latest evaluation could not compute and why (no holdout texts for membership inference...).
            "unavailable": [] if self.evaluation.latest is None else self.evaluation.latest.unavailable(),
            "history": [dict(r) for r in records],
        }


def _numbers(record: dict) -> dict:
    """The evaluation's summary numbers of a record (no epoch, step or fluency)."""
    return {key: value for key, value in record.items() if key not in ("epoch", "step") and not is_fluency_key(key)}


def setup_fit_evaluation(evaluator, retain, every_n_epochs: int, num_logged_samples: int,
                         rule: str, collapse_fraction: float, save_dir: Path,
                         save_model: Callable[[object, Path], None],
                         benchmark: BenchmarkKeys = BENCHMARKS["tofu"],
                         result_path: Path | None = None) -> FitEvaluation:
    """The evaluation, selection and collapse callbacks of a run, built from their settings.

    Args:
        evaluator: The benchmark's evaluator (:class:`~unlearn.evaluation.TofuEvaluator`, MUSE's, multiple choice's).
        retain: The retain model's results (forget quality and PrivLeak need them), or None.
        rule: ``eval.selection``; without a retain model ``forget_quality`` falls back to ``last``.
        save_dir: Where the best epoch's weights are kept until the run ends.
        save_model: ``save_model(policy, folder)`` writes a complete model folder.
        benchmark: The benchmark's keys: its utility (watched for collapse) and forget score (selection).
        result_path: Where the selected epoch's per-question results go (``<run>/eval_selected.json``), or None.
    """
    evaluation_mod, collapse_mod, selection_mod = _callbacks_module()
    needs_retain = benchmark.selection_goal != "low"  # forget quality, PrivLeak: measured against the retain model
    if retain is None and rule == "forget_quality" and needs_retain:
        log.warning("No retain model, so no %s: the run keeps its last epoch (eval.selection=last). "
                    "Give model.retain_path=... to select by it.", benchmark.selection)
        rule = "last"
    try:
        evaluation = evaluation_mod.BenchmarkEvaluation(evaluator, every_n_epochs, retain, num_logged_samples,
                                                        benchmark)
        selection = selection_mod.BestEpochSelection(evaluation, rule, collapse_fraction, save_dir, save_model,
                                                     benchmark, result_path)
        collapse = collapse_mod.UtilityCollapseStopping(evaluation, collapse_fraction, monitor=benchmark.utility)
    except ValueError as err:
        raise ConfigError(f"eval: {err}") from err
    return FitEvaluation(evaluation, selection, collapse, retain, benchmark)
