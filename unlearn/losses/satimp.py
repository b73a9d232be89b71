"""SatImp: gradient ascent reweighted by saturation and importance.

Yang, Wang, Huang, Liu, Zhang, Han, "Exploring Criteria of Loss Reweighting to Enhance LLM
Unlearning" (ICML 2025, arXiv 2505.11953); reference code open-unlearning's
``compute_satimp_loss`` (``src/trainer/utils.py``) called by ``SatImp.compute_loss``
(``src/trainer/unlearn/satimp.py``). With ``p_t = πθ(y_t | x_<t)`` of each answer token:

    w_t = sg(p_t)^β₁ · (1 − sg(p_t))^β₂
    L_SatImp(θ) = −mean_{answer tokens t of the batch} [ w_t · NLL_t(θ) ]
    L(θ) = c_forget · L_SatImp(θ; forget) + c_rt · mean_token NLL(θ; retain)

The first factor (saturation, as WGA's) stops pushing tokens already forgotten; the second
(importance) also spares tokens the model is sure of. β₂ = 0 is WGA with β = β₁.

Defaults are what open-unlearning's SatImp config runs (``configs/trainer/SatImp.yaml``): β₁ = 5,
β₂ = 1, ``c_forget = 0.1`` (``gamma``), retain NLL with ``c_rt = 1`` (``alpha``). The class in
``satimp.py`` and the method's README state the reverse weights (``gamma = 1``, ``alpha = 0.1``);
the config overrides them in every run, so its values are taken. ``retain="kl"`` uses GradDiff's KL
(``kl_mask`` default ``"all"``, open-unlearning's). Likelihoods in float32 here. The reference builds
a reference model for SatImp that it never reads; here SatImp needs none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from unlearn.losses.base import LossOutput, UnlearningLoss, check_non_negative, forward_logits
from unlearn.losses.retain import attach_retain_term
from unlearn.losses.wga import weighted_ascent

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


class SatImp(UnlearningLoss):
    """Saturation- and importance-weighted gradient ascent on the forget batch plus a retain term.

    Args:
        beta1: β₁ >= 0, power of the saturation weight ``p_t``.
        beta2: β₂ >= 0, power of the importance weight ``1 − p_t``.
        c_forget: Weight of the forget term (open-unlearning's ``gamma``).
        retain: ``"nll"`` (default), ``"kl"`` or ``"none"``.
        c_rt: Weight of the retain NLL (``alpha``).
        c_kl: Weight of the retain KL.
        kl_mask: ``"all"`` (open-unlearning's), ``"answer"`` or ``"padded"`` (``retain="kl"``).
        max_length: ``data.max_length``; needed by ``kl_mask="padded"``.
    """

    uses_retain = True

    def __init__(
        self,
        *,
        beta1: float = 5.0,
        beta2: float = 1.0,
        c_forget: float = 0.1,
        retain: str = "nll",
        c_rt: float = 1.0,
        c_kl: float = 1.0,
        kl_mask: str = "all",
        max_length: int | None = None,
    ) -> None:
        self.beta1 = check_non_negative("beta1", beta1)
        self.beta2 = check_non_negative("beta2", beta2)
        self.c_forget = check_non_negative("c_forget", c_forget)
        attach_retain_term(self, retain, c_rt, c_kl, kl_mask, max_length)

    def weight(self, p: Tensor) -> Tensor:
        """``p^β₁ · (1 − p)^β₂`` of detached token probabilities."""
        return p ** self.beta1 * (1 - p) ** self.beta2

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None = None
    ) -> LossOutput:
        forget = batch["forget"]
        forget_loss = weighted_ascent(forward_logits(policy, forget), forget["labels"], self.weight)
        retain_loss = self.retain_term(policy, batch.get("retain"), reference)
        return LossOutput.combine(self.c_forget * forget_loss, retain_loss, {"satimp": forget_loss.detach()})
