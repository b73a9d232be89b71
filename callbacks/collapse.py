"""Early stopping on catastrophic collapse: model utility falling far below its value before unlearning."""

from __future__ import annotations

import logging
import math
from typing import Any, Protocol

import lightning as L
from typing_extensions import override

from unlearn.names import MODEL_UTILITY

log = logging.getLogger(__name__)


class EvaluationRecords(Protocol):
    """What the stopping and selection callbacks read: one record per evaluation, oldest first."""

    records: list[dict[str, Any]]


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


class UtilityCollapseStopping(L.Callback):
    """Stops training once model utility < ``fraction`` × its epoch-0 value, or is not finite.

    docs/definitions.md, "Catastrophic collapse": gradient ascent drives retain utility to zero
    within a few epochs and the generations turn to gibberish; NPO decays far more slowly. The
    first record of ``evaluation`` (the model before unlearning) is the baseline; every later one
    is checked once, right after it is made. All ranks take the same decision
    (``reduce_boolean_decision``: one rank seeing collapse stops them all).

    Args:
        evaluation: The evaluation callback (its ``records``), placed before this one.
        fraction: In [0, 1]; 0 stops only on a non-finite utility.
        monitor: The record key to watch.
    """

    def __init__(self, evaluation: EvaluationRecords, fraction: float = 0.5, monitor: str = MODEL_UTILITY):
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
        if not hasattr(evaluation, "records"):
            raise TypeError(f"evaluation must keep a list of records, got {type(evaluation).__name__}")
        self.evaluation, self.fraction, self.monitor = evaluation, float(fraction), monitor
        self.baseline: float | None = None
        self.stopped_epoch: int | None = None
        self.reason: str | None = None
        self.last_checked_epoch = -1

    @property
    def threshold(self) -> float | None:
        """Model utility below which training stops (None before the baseline is known)."""
        return None if self.baseline is None else self.fraction * self.baseline

    def check(self, trainer: L.Trainer) -> None:
        """Look at the newest record, if it has not been looked at yet."""
        if trainer.sanity_checking or not self.evaluation.records:
            return
        record = self.evaluation.records[-1]
        if record["epoch"] <= self.last_checked_epoch:
            return
        self.last_checked_epoch = record["epoch"]
        value = record[self.monitor]
        if self.baseline is None:
            self.baseline = value
            if not is_finite(value):
                log.warning("%s is %s before unlearning; only a non-finite value will stop the run.", self.monitor, value)
            return
        threshold = self.threshold
        collapsed = not is_finite(value) or (is_finite(threshold) and value < threshold)
        if trainer.strategy.reduce_boolean_decision(bool(collapsed), all=False):
            trainer.should_stop = True
            self.stopped_epoch = record["epoch"]
            shown = "not finite" if not is_finite(value) else f"{value:.4g}"
            self.reason = (f"{self.monitor} at epoch {record['epoch']} is {shown}, below {self.fraction:g} x its value "
                           f"before unlearning ({self.baseline:.4g}): collapse, training stopped")
            if trainer.is_global_zero:
                log.warning("Stopping early: %s.", self.reason)

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check(trainer)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"baseline": self.baseline, "stopped_epoch": self.stopped_epoch, "reason": self.reason,
                "last_checked_epoch": self.last_checked_epoch, "fraction": self.fraction, "monitor": self.monitor}

    @property
    @override
    def state_key(self) -> str:
        # Named by the value it watches, so a second stopping rule on another value keeps its own state.
        return self._generate_state_key(monitor=self.monitor)

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_fraction = state_dict.get("fraction", self.fraction)
        if saved_fraction != self.fraction:
            log.warning("The checkpoint stopped below %g x the starting %s; this run uses %g x (eval.collapse_fraction). "
                        "The baseline is kept and the new fraction applies from here on.", saved_fraction,
                        self.monitor, self.fraction)
        self.baseline = state_dict["baseline"]
        self.stopped_epoch, self.reason = state_dict["stopped_epoch"], state_dict["reason"]
        self.last_checked_epoch = state_dict["last_checked_epoch"]
