"""A quick health check of every run: mean answer NLL on the forget and retain sets."""

from __future__ import annotations

import lightning as L
from typing_extensions import override

from unlearn.models.scoring import mean_token_nll
from unlearn.training.sharding import whole_weights


class NLLProbe(L.Callback):
    """Mean per-token answer NLL on the forget and retain sets before unlearning and after each epoch.

    Keeping every epoch's numbers lets the summary report the epoch that became the run's model
    (model selection may keep an earlier one than the last); a pass over a few hundred rows is
    small next to an epoch of training.

    Args:
        tokenizer: The policy's tokenizer.
        splits: Rows per split name (``question``/``answer`` dicts), each measured in full.
        prompt_format, max_length: As the training batches are built (a ``PromptFormat`` or its name); the
            probe scores through the same ``tokenize_qa`` as training and evaluation.
    """

    def __init__(self, tokenizer, splits: dict[str, list[dict]], prompt_format, max_length: int):
        self.tokenizer, self.splits = tokenizer, splits
        self.prompt_format, self.max_length = prompt_format, max_length
        self.before: dict[str, float] = {}
        self.history: dict[int, dict[str, float]] = {}  # epochs completed -> NLL per split

    def _measure(self, trainer, pl_module) -> dict[str, float]:
        with whole_weights(trainer):  # every rank measures every row (unlearn.training.sharding)
            return {name: mean_token_nll(pl_module.policy, self.tokenizer, rows, self.prompt_format, self.max_length)
                    for name, rows in self.splits.items()}

    @override
    def on_train_start(self, trainer, pl_module):
        if not self.before:  # a resumed run restores the measurement from before its first update
            self.before = self._measure(trainer, pl_module)

    @override
    def on_train_epoch_end(self, trainer, pl_module):
        self.history[trainer.current_epoch + 1] = self._measure(trainer, pl_module)

    def after(self, epoch: int | None = None) -> tuple[int, dict[str, float]]:
        """``(epoch, NLL per split)`` for ``epoch``, or for the last epoch measured."""
        if not self.history:
            return 0, self.before
        epoch = epoch if epoch in self.history else max(self.history)
        return epoch, self.history[epoch]

    @override
    def state_dict(self) -> dict:
        return {"before": self.before, "history": {str(k): v for k, v in self.history.items()}}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        self.before = state_dict["before"]
        self.history = {int(k): v for k, v in state_dict.get("history", {}).items()}
