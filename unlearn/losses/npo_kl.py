"""NPO with a KL anchor on the retain set (the paper's NPO-KL).

Zhang et al., arXiv 2404.05868:

    L(θ) = c_npo · L_NPO(θ; forget) + c_kl · KL(π_ref ‖ π_θ)(retain)

Defaults β = 0.1 and ``c_npo = c_kl = 1`` are the paper's TOFU settings. The paper's code (the
``npo_KL`` branch of ``CustomTrainerForgetting.compute_loss``, ``TOFU/dataloader.py``) sums the KL
over every position of batches padded to 500 tokens and divides by B·500: ``kl_mask="padded"``, which
``configs/loss/npo_kl.yaml`` sets. The strategy's own default counts answer positions only, see
:class:`unlearn.losses.retain.RetainTerm`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from unlearn.losses.base import LossOutput, UnlearningLoss, check_non_negative, check_positive
from unlearn.losses.npo import npo_term
from unlearn.losses.retain import RetainTerm

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


class NPOKL(UnlearningLoss):
    """NPO on the forget batch plus ``KL(π_ref ‖ π_θ)`` on the retain batch.

    Args:
        beta: Inverse temperature β > 0.
        c_npo: Weight of the NPO term.
        c_kl: Weight of the KL term.
        kl_mask: ``"answer"`` (answer positions), ``"all"`` (every position / B·T, open-unlearning) or
            ``"padded"`` (every position of the batch padded to ``max_length`` / B·max_length, NPO code).
        max_length: ``data.max_length``; needed by ``kl_mask="padded"``.
    """

    needs_reference_logps = True
    needs_reference_logits = True
    uses_retain = True

    def __init__(
        self, *, beta: float = 0.1, c_npo: float = 1.0, c_kl: float = 1.0, kl_mask: str = "answer",
        max_length: int | None = None,
    ) -> None:
        self.beta = check_positive("beta", beta)
        self.c_npo = check_non_negative("c_npo", c_npo)
        self.c_kl = check_non_negative("c_kl", c_kl)
        self.retain_term = RetainTerm("kl", self.c_kl, kl_mask, max_length)
        self.kl_mask, self.max_length = self.retain_term.kl_mask, self.retain_term.max_length

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None
    ) -> LossOutput:
        npo_loss, extras = npo_term(policy, batch["forget"], reference, self.beta)
        retain_loss = self.retain_term(policy, batch.get("retain"), reference)
        return LossOutput.combine(self.c_npo * npo_loss, retain_loss, extras)
