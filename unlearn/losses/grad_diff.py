"""Gradient difference (GradDiff): gradient ascent on forget, descent on retain.

Liu et al. 2022, "Continual learning and private unlearning"; TOFU baseline (arXiv 2401.06121):

    L(θ) = −c_forget · mean_token NLL(θ; forget) + c_rt · mean_token NLL(θ; retain)

Defaults ``c_forget = c_rt = 1`` are those of the TOFU and NPO reference code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from unlearn.losses.base import LossOutput, UnlearningLoss, check_non_negative
from unlearn.losses.ga import ascent_term
from unlearn.losses.retain import RetainTerm

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


class GradDiff(UnlearningLoss):
    """GA on the forget batch plus retain NLL.

    Args:
        c_forget: Weight of the ascent term.
        c_rt: Weight of the retain NLL.
    """

    uses_retain = True

    def __init__(self, *, c_forget: float = 1.0, c_rt: float = 1.0) -> None:
        self.c_forget = check_non_negative("c_forget", c_forget)
        self.c_rt = check_non_negative("c_rt", c_rt)
        self.retain_term = RetainTerm("nll", self.c_rt)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None = None
    ) -> LossOutput:
        forget_loss = self.c_forget * ascent_term(policy, batch["forget"])
        return LossOutput.combine(forget_loss, self.retain_term(policy, batch.get("retain"), reference))
