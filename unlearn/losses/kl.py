"""Gradient ascent with a KL anchor on the retain set ("KL" in TOFU).

TOFU baseline (Maini et al. 2024, arXiv 2401.06121), as in the NPO reference code (the ``KL`` branch
of ``CustomTrainerForgetting.compute_loss``, ``TOFU/dataloader.py``):

    L(θ) = −c_forget · mean_token NLL(θ; forget) + c_kl · KL(π_ref ‖ π_θ)(retain)

Defaults ``c_forget = c_kl = 1`` follow that code. The KL's normalisation, ``kl_mask``, is described
in :class:`unlearn.losses.retain.RetainTerm`: ``"padded"`` is that code's (sum / B·max_length),
``"all"`` open-unlearning's (sum / B·T), ``"answer"`` (the default) a mean over answer positions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from unlearn.losses.base import LossOutput, UnlearningLoss, check_non_negative
from unlearn.losses.ga import ascent_term
from unlearn.losses.retain import RetainTerm

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


class GradAscentKL(UnlearningLoss):
    """GA on the forget batch plus ``KL(π_ref ‖ π_θ)`` on the retain batch.

    Args:
        c_forget: Weight of the ascent term.
        c_kl: Weight of the KL term.
        kl_mask: ``"answer"`` (answer positions), ``"all"`` (every position / B·T, open-unlearning) or
            ``"padded"`` (every position of the batch padded to ``max_length`` / B·max_length, NPO code).
        max_length: ``data.max_length``; needed by ``kl_mask="padded"``.
    """

    uses_retain = True
    needs_reference_logits = True

    def __init__(
        self, *, c_forget: float = 1.0, c_kl: float = 1.0, kl_mask: str = "answer", max_length: int | None = None
    ) -> None:
        self.c_forget = check_non_negative("c_forget", c_forget)
        self.c_kl = check_non_negative("c_kl", c_kl)
        self.retain_term = RetainTerm("kl", self.c_kl, kl_mask, max_length)
        self.kl_mask, self.max_length = self.retain_term.kl_mask, self.retain_term.max_length

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None
    ) -> LossOutput:
        forget_loss = self.c_forget * ascent_term(policy, batch["forget"])
        return LossOutput.combine(forget_loss, self.retain_term(policy, batch.get("retain"), reference))
