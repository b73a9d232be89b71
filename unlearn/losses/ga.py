"""Gradient ascent (GA) on the forget set.

Jang et al. 2023, "Knowledge Unlearning for Mitigating Privacy Risks in Language Models"
(arXiv 2210.01504), and the TOFU baseline (Maini et al. 2024, arXiv 2401.06121):

    L_GA(θ) = −mean_token NLL(θ; forget batch)

i.e. Hugging Face's causal-LM loss on the forget batch, negated. It has no hyperparameters. Unbounded
below, it drives the forget NLL to +∞ and the model into collapse; it is the baseline NPO fixes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from unlearn.losses.base import LossOutput, UnlearningLoss, forward_logits, token_mean_nll

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


def ascent_term(policy: Any, forget: dict[str, Tensor]) -> Tensor:
    """``−mean_token NLL`` of the forget batch (one policy forward)."""
    return -token_mean_nll(forward_logits(policy, forget), forget["labels"])


class GradAscent(UnlearningLoss):
    """``L = −mean_token NLL(forget)``."""

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None = None
    ) -> LossOutput:
        return LossOutput.combine(ascent_term(policy, batch["forget"]))
