"""NPO with a retain NLL term (the paper's NPO-RT; ``npo_grad_diff`` in its code).

Zhang et al., arXiv 2404.05868:

    L(θ) = c_npo · L_NPO(θ; forget) + c_rt · mean_token NLL(θ; retain)

Defaults β = 0.1 and ``c_npo = c_rt = 1`` are the paper's TOFU settings. This is the NPO variant
behind open-unlearning's reference numbers (forget quality 0.42 / utility 0.54 on forget10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from unlearn.losses.base import LossOutput, UnlearningLoss, check_non_negative, check_positive
from unlearn.losses.npo import npo_term
from unlearn.losses.retain import RetainTerm

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


class NPORT(UnlearningLoss):
    """NPO on the forget batch plus retain NLL.

    Args:
        beta: Inverse temperature β > 0.
        c_npo: Weight of the NPO term.
        c_rt: Weight of the retain NLL.
    """

    needs_reference_logps = True
    uses_retain = True

    def __init__(self, *, beta: float = 0.1, c_npo: float = 1.0, c_rt: float = 1.0) -> None:
        self.beta = check_positive("beta", beta)
        self.c_npo = check_non_negative("c_npo", c_npo)
        self.c_rt = check_non_negative("c_rt", c_rt)
        self.retain_term = RetainTerm("nll", self.c_rt)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None
    ) -> LossOutput:
        npo_loss, extras = npo_term(policy, batch["forget"], reference, self.beta)
        retain_loss = self.retain_term(policy, batch.get("retain"), reference)
        return LossOutput.combine(self.c_npo * npo_loss, retain_loss, extras)
