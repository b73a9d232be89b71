"""IDK fine-tuning: teach the model to refuse on forget questions.

TOFU's "IDK" baseline (Maini et al. 2024, arXiv 2401.06121): each forget question is paired with a
random "I don't know" answer (``batch["idk"]``) that is fitted like ordinary fine-tuning data:

    L(θ) = mean_token NLL(θ; idk) + c_rt · mean_token NLL(θ; retain)

Default ``c_rt = 1`` follows the TOFU and NPO reference code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from unlearn.losses.base import (
    LossOutput,
    UnlearningLoss,
    check_non_negative,
    forward_logits,
    token_mean_nll,
)
from unlearn.losses.retain import RetainTerm

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


class IdkNLL(UnlearningLoss):
    """NLL of "I don't know" answers to forget questions plus retain NLL.

    Args:
        c_rt: Weight of the retain NLL.
    """

    uses_retain = True
    uses_idk = True

    def __init__(self, *, c_rt: float = 1.0) -> None:
        self.c_rt = check_non_negative("c_rt", c_rt)
        self.retain_term = RetainTerm("nll", self.c_rt)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None = None
    ) -> LossOutput:
        idk = batch["idk"]
        forget_loss = token_mean_nll(forward_logits(policy, idk), idk["labels"])
        return LossOutput.combine(forget_loss, self.retain_term(policy, batch.get("retain"), reference))
