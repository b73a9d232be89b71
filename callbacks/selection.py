"""Model selection: which evaluated epoch becomes the run's model, and why."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
from typing_extensions import override

from unlearn.callbacks.collapse import EvaluationRecords, is_finite
from unlearn.files import atomic_folder, atomic_write_text
from unlearn.names import BENCHMARKS, SELECTION_RULES, BenchmarkKeys, format_number

log = logging.getLogger(__name__)


def selection_key(record: dict[str, Any], rule: str, threshold: float,
                  benchmark: BenchmarkKeys = BENCHMARKS["tofu"]) -> tuple:
    """Sort key of an evaluated epoch under ``rule``; the largest key is selected, the earliest on ties.

    ``forget_quality``: epochs whose utility (the benchmark's: TOFU's model utility, MUSE's KnowMem
    on retain) is at least ``threshold`` come first, ranked by the benchmark's forget score (TOFU's
    forget quality; MUSE's PrivLeak closest to 0; see :meth:`BenchmarkKeys.selection_score`), then
    the headline forget measure (MUSE's VerbMem: :meth:`BenchmarkKeys.tiebreak`), then utility; if
    none qualifies, the highest utility. ``model_utility``: the highest utility. ``last``: the latest
    epoch. A missing forget score ranks lowest; a non-finite utility ranks below every finite one.
    """
    value = record.get(benchmark.utility)
    utility = value if is_finite(value) else float("-inf")
    score = benchmark.selection_score(record)
    quality = float("-inf") if score is None else score
    if rule == "last":
        return (record["epoch"],)
    if rule == "model_utility":
        return (utility,)
    tiebreak = benchmark.tiebreak(record)
    eligible = utility >= threshold
    return (1, quality, tiebreak, utility) if eligible else (0, utility, quality, tiebreak)


class BestEpochSelection(L.Callback):
    """Keeps the best evaluated epoch by ``rule`` and its weights, for the run's final model.

    The first record (the model before unlearning) sets the utility threshold,
    ``collapse_fraction`` × its model utility, and is never selected: the run's model is an
    unlearned one. Each later record is compared once, right after it is made; a new best has its
    weights written to ``save_dir`` (by rank 0, replacing the previous best), so memory is not
    doubled for large models. With ``rule="last"`` nothing is written: the final weights are the
    selection. With ``result_path``, each new best's per-question results and the retain model's are
    written there too (``{"epoch", "result", "retain"}``, the results' ``to_dict()``), for intervals
    over questions (:mod:`unlearn.reporting.question_ci`); the epoch in the file says which selection
    it belongs to, so a crash between the two writes is detected, not mistaken.

    Args:
        evaluation: The evaluation callback (its ``records``), placed before this one.
        rule: One of :data:`SELECTION_RULES`.
        collapse_fraction: In [0, 1], as for :class:`~unlearn.callbacks.collapse.UtilityCollapseStopping`.
        save_dir: Where the best weights go; None keeps only the record (for tests and ``last``).
        save_model: ``save_model(policy, folder)`` writes a complete model folder that does not exist
            yet (``fit`` adds the tokenizer and merges LoRA adapters); default: ``save_pretrained``.
        benchmark: Which record keys are the utility and the forget score (:data:`unlearn.names.BENCHMARKS`).
        result_path: Where the selected epoch's per-question results go (a JSON file); None writes none.
    """

    def __init__(self, evaluation: EvaluationRecords, rule: str = "forget_quality", collapse_fraction: float = 0.5,
                 save_dir: str | Path | None = None, save_model: Callable[[Any, Path], None] | None = None,
                 benchmark: BenchmarkKeys = BENCHMARKS["tofu"], result_path: str | Path | None = None):
        if rule not in SELECTION_RULES:
            raise ValueError(f"rule must be one of {', '.join(SELECTION_RULES)}, got {rule!r}")
        if isinstance(collapse_fraction, bool) or not isinstance(collapse_fraction, (int, float)) \
                or not 0 <= collapse_fraction <= 1:
            raise ValueError(f"collapse_fraction must be a number in [0, 1], got {collapse_fraction!r}")
        if not hasattr(evaluation, "records"):
            raise TypeError(f"evaluation must keep a list of records, got {type(evaluation).__name__}")
        self.evaluation, self.rule, self.collapse_fraction = evaluation, rule, float(collapse_fraction)
        self.benchmark = benchmark
        self.save_dir = None if save_dir is None else Path(save_dir)
        self.result_path = None if result_path is None else Path(result_path)
        self.save_model = save_model or (lambda model, out: model.save_pretrained(out, safe_serialization=True))
        self.selected: dict[str, Any] | None = None
        self.saved_epoch: int | None = None  # epoch whose weights are in save_dir
        self.last_checked_epoch = -1

    def _baseline(self) -> float:
        records = self.evaluation.records
        value = records[0].get(self.benchmark.utility) if records else None
        return value if is_finite(value) else float("nan")

    @property
    def threshold(self) -> float:
        """Model utility an epoch needs to be eligible under ``forget_quality`` (-inf without a finite start)."""
        baseline = self._baseline()
        return self.collapse_fraction * baseline if is_finite(baseline) else float("-inf")

    @property
    def reason(self) -> str:
        """Which epoch was selected and why, in words."""
        if self.selected is None:
            return "no epoch after the start was evaluated"
        keys = self.benchmark
        epoch, utility, quality = self.selected["epoch"], self.selected.get(keys.utility), self.selected.get(keys.selection)
        utility_name, quality_name = _title(keys.utility), _title(keys.selection)
        if self.rule == "last":
            return f"epoch {epoch}: the last evaluated epoch (eval.selection=last)"
        if self.rule == "model_utility":
            return (f"epoch {epoch}: highest {utility_name} ({format_number(utility)}) after the start "
                    "(eval.selection=model_utility)")
        limit = f"{self.threshold:.3f} ({self.collapse_fraction:g} x its starting value {self._baseline():.3f})"
        best = {"high": "highest", "low": "lowest", "zero": "closest to 0"}[keys.selection_goal]
        if is_finite(utility) and utility >= self.threshold:
            return (f"epoch {epoch}: {best} {quality_name} ({format_number(quality, 'g')}) among evaluated epochs "
                    f"whose {utility_name} stayed >= {limit}")
        return (f"epoch {epoch}: no evaluated epoch kept {utility_name} >= {limit}, so the one with the highest "
                f"{utility_name}")

    def consider(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Compare the newest record with the best so far, if it has not been compared yet."""
        records = self.evaluation.records
        if trainer.sanity_checking or len(records) < 2 or records[-1]["epoch"] <= self.last_checked_epoch:
            return
        record = records[-1]
        self.last_checked_epoch = record["epoch"]
        threshold = self.threshold
        if self.selected is not None and \
                selection_key(record, self.rule, threshold, self.benchmark) <= \
                selection_key(self.selected, self.rule, threshold, self.benchmark):
            return
        self.selected = dict(record)
        if self.result_path is not None and trainer.is_global_zero:
            self._write_result(record["epoch"])
        if self.rule != "last" and self.save_dir is not None:
            # Under a sharding strategy the whole weights are gathered onto rank 0, which takes every rank.
            whole = getattr(pl_module, "whole_policy", None)
            model = whole() if whole else getattr(pl_module, "policy", pl_module)
            if trainer.is_global_zero:
                self._save(model)
            self.saved_epoch = record["epoch"]

    def _save(self, model) -> None:
        # Written beside the previous best and swapped in (unlearn.files.atomic_folder): a crash at
        # any point, even between the two renames of the swap, keeps a whole best model.
        with atomic_folder(self.save_dir, replace=True) as staging:
            self.save_model(model, staging)

    def _write_result(self, epoch: int) -> None:
        latest, retain = self.evaluation.latest, getattr(self.evaluation, "retain", None)
        if latest is None or not hasattr(latest, "to_dict"):
            return
        payload = {"epoch": epoch, "result": latest.to_dict(),
                   "retain": retain.to_dict() if hasattr(retain, "to_dict") else None}
        atomic_write_text(self.result_path, json.dumps(payload))

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.consider(trainer, pl_module)

    @property
    @override
    def state_key(self) -> str:
        # Named by what it ranks on; a changed rule is detected in load_state_dict, not by the key.
        keys = self.benchmark
        return self._generate_state_key(ranks=f"{keys.selection},{keys.utility}")

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "selected": self.selected, "saved_epoch": self.saved_epoch,
                "last_checked_epoch": self.last_checked_epoch,
                "save_dir": None if self.save_dir is None else str(self.save_dir)}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["rule"] != self.rule:
            log.warning("The checkpoint selected epochs by '%s', this run by '%s'; starting the selection afresh.",
                        state_dict["rule"], self.rule)
            return
        self.selected, self.saved_epoch = state_dict["selected"], state_dict["saved_epoch"]
        self.last_checked_epoch = state_dict["last_checked_epoch"]


def _title(key: str) -> str:
    """``utility/model_utility`` -> ``model utility``; ``privacy/privleak`` -> ``privleak``."""
    return key.split("/", 1)[-1].replace("_", " ")
