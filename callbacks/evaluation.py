"""The benchmark's evaluation during unlearning: before the first update and every N epochs."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from typing_extensions import override

from unlearn.names import BENCHMARKS, BenchmarkKeys, format_number
from unlearn.training.sharding import is_sharded, whole_weights

log = logging.getLogger(__name__)


class BenchmarkEvaluation(L.Callback):
    """Evaluates the policy at epoch 0 (before any update) and after every ``every_n_epochs`` epochs.

    Each evaluation appends a record ``{"epoch", "step", <the benchmark's summary numbers>, <fluency>}``
    to :attr:`records` (TOFU's 14 numbers and the membership-inference AUCs, or MUSE's VerbMem,
    KnowMem and PrivLeak, or multiple-choice accuracies), logs the numbers as ``forget/*``,
    ``utility/*`` and ``privacy/*`` to every logger (the benchmark's utility and forget measure also
    on the progress bar), and writes a few generations to TensorBoard as text, so that a model turning
    to gibberish is seen, not only measured. The final epoch is always evaluated. Records are the
    callback's state: a resumed run keeps its epoch-0 baseline and history.
    :class:`~unlearn.callbacks.collapse.UtilityCollapseStopping` and
    :class:`~unlearn.callbacks.selection.BestEpochSelection` read them, so they must come after this
    callback in the trainer's list.

    Args:
        evaluator: Called as ``evaluator(model, rank=, world_size=)`` on every rank (it gathers) and
            returning a result with ``summary()``, ``fluency()``, ``samples()`` and
            ``compare_with_retain()`` (:class:`~unlearn.evaluation.results.EvalResult`, MUSE's or
            multiple choice's result).
        every_n_epochs: Evaluate after epochs ``n, 2n, ...`` (and the last).
        retain: The retain model's results (forget quality, PrivLeak, the reference attack); None
            reports those unavailable.
        num_logged_samples: Generations per set written to TensorBoard.
        benchmark: The benchmark's keys (:data:`unlearn.names.BENCHMARKS`).
    """

    def __init__(self, evaluator, every_n_epochs: int = 1, retain=None, num_logged_samples: int = 4,
                 benchmark: BenchmarkKeys = BENCHMARKS["tofu"]):
        if not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be an integer >= 1, got {every_n_epochs!r}")
        if not isinstance(num_logged_samples, int) or num_logged_samples < 0:
            raise ValueError(f"num_logged_samples must be an integer >= 0, got {num_logged_samples!r}")
        self.evaluator, self.every_n_epochs = evaluator, every_n_epochs
        self.retain, self.num_logged_samples = retain, num_logged_samples
        self.benchmark = benchmark
        self.records: list[dict[str, Any]] = []
        self.latest = None

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> dict[str, Any]:
        """Evaluate now, record the result as ``epoch`` and log it."""
        model = getattr(pl_module, "policy", pl_module)
        # Each rank answers its own questions, for as many tokens as it needs: under a sharding
        # strategy that needs every weight whole on every rank (unlearn.training.sharding).
        with whole_weights(trainer):
            result = self.evaluator(model, rank=trainer.global_rank, world_size=trainer.world_size,
                                    gradients=not is_sharded(trainer))
        result.compare_with_retain(self.retain)
        record = {"epoch": epoch, "step": trainer.global_step, **result.summary(), **result.fluency()}
        self.records.append(record)
        self.latest = result
        self._log(trainer, pl_module, record, result)
        return record

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, record: dict, result) -> None:
        metrics = {k: v for k, v in record.items() if k not in ("epoch", "step") and v is not None}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        # The bar shows values logged through the module; the loggers already have them. Every rank
        # holds the same gathered numbers, so they are logged without a collective: with
        # sync_dist=True the progress bar, which only rank 0 draws, would reduce them on rank 0
        # alone, out of step with the other ranks' collectives, and the run would hang.
        keys = self.benchmark
        for key in (keys.utility, keys.forget):
            if key in metrics:
                pl_module.log(key, float(metrics[key]), prog_bar=True, logger=False, sync_dist=False)
        if trainer.is_global_zero:
            log.info("Evaluation at epoch %d: %s %s, %s %s", record["epoch"], keys.forget,
                     format_number(record.get(keys.forget), "g"), keys.utility,
                     format_number(record.get(keys.utility), "g"))
            if self.num_logged_samples:
                self._log_samples(trainer, result)
            self._log_figure(trainer)

    def _log_figure(self, trainer: L.Trainer) -> None:
        # The trajectory so far, redrawn at each evaluation: TensorBoard's Images tab shows its history.
        loggers = [lg for lg in trainer.loggers if hasattr(getattr(lg, "experiment", None), "add_image")]
        if not loggers:
            return
        from unlearn.reporting.plots import figure_to_rgb, trajectory_figure

        image = figure_to_rgb(trajectory_figure({"this run": self.records}, benchmark=self.benchmark))
        for logger in loggers:
            logger.experiment.add_image("figures/trajectory", image, trainer.global_step, dataformats="HWC")

    def _log_samples(self, trainer: L.Trainer, result) -> None:
        samples = result.samples()
        for logger in trainer.loggers:
            add_text = getattr(logger.experiment, "add_text", None)
            if add_text is None:
                continue
            for name, triples in samples.items():
                lines = ["| prompt | truth | generation |", "|---|---|---|"]
                for triple in triples[:self.num_logged_samples]:
                    lines.append("| " + " | ".join(_escape(text) for text in triple) + " |")
                add_text(f"samples/{name}", "\n".join(lines), trainer.global_step)

    @override
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.records:  # a resumed run has its records back
            return
        self.evaluate(trainer, pl_module, trainer.current_epoch)

    @override
    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1  # epochs completed
        last = trainer.max_epochs is not None and 0 < trainer.max_epochs <= epoch
        if epoch % self.every_n_epochs == 0 or last:
            self.evaluate(trainer, pl_module, epoch)

    @override
    def state_dict(self) -> dict[str, Any]:
        return {"records": [dict(r) for r in self.records]}

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.records = [dict(r) for r in state_dict["records"]]


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or " "
