"""Switching a model's train/eval mode for a while and back."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Put ``model`` in eval mode (no dropout) inside the block, then back in the mode it was in.

    The previous mode is restored even when the block raises. Only the top-level flag is
    remembered: ``model.train(was_training)`` sets every submodule alike, as ``model.eval()`` did.

    Example::

        with eval_mode(model), torch.no_grad():
            logits = model(**batch).logits
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
