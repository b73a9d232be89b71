"""The frozen reference model ``π_ref`` that NPO, DPO and the KL retain term compare against.

Losses only talk to the small :class:`Reference` protocol, so a reference that computes on the fly
(:class:`ModelReference`) and one that reads precomputed sequence log-probs keyed by
``(split, inputs["index"])`` are interchangeable.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from unlearn.losses.base import forward_logits, sequence_nll


@runtime_checkable
class Reference(Protocol):
    """What a loss may ask of the reference model."""

    def sequence_logps(self, inputs: dict[str, Tensor], split: str) -> Tensor:
        """``log π_ref(a | q)``: sum of the label tokens' log-probs, one per row, without grad.

        Args:
            inputs: One split of a batch (``input_ids``, ``attention_mask``, ``labels``, ``index``).
            split: ``"forget"`` or ``"idk"``; with ``inputs["index"]`` it identifies each row, which
                is what lets a cache serve these numbers.

        Returns:
            ``(B,)`` float32 tensor.
        """
        ...

    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        """Full next-token logits ``(B, T, V)`` without grad (for KL on retain batches)."""
        ...


class ModelReference:
    """A frozen Hugging Face causal LM serving as the reference.

    The model is frozen (``requires_grad_(False)``) and put in eval mode here. This class is
    deliberately not an ``nn.Module``: a parent module's ``.train()``, its optimizer and its
    checkpoint therefore never reach the reference, which can always be reloaded from the base model.
    Moving it to a device is the caller's job (``reference.model.to(device)``).

    Args:
        model: Causal LM returning ``.logits`` from ``model(input_ids=..., attention_mask=...)``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.model.requires_grad_(False)
        self.model.eval()

    @torch.no_grad()
    def sequence_logps(self, inputs: dict[str, Tensor], split: str) -> Tensor:
        """Sum of label-token log-probs per row; padding and prompt are ignored via ``-100`` labels."""
        del split  # every call is computed afresh, so rows need no key
        return -sequence_nll(forward_logits(self.model, inputs), inputs["labels"])

    @torch.no_grad()
    def logits(self, inputs: dict[str, Tensor]) -> Tensor:
        """Next-token logits of the frozen model, ``(B, T, V)``."""
        return forward_logits(self.model, inputs)
