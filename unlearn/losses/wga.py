"""WGA: weighted gradient ascent, each forget token weighted by its own (detached) likelihood.

Wang, Zhou, Zhou, Shin, Han, Weinberger, "Rethinking LLM Unlearning Objectives: A Gradient
Perspective and Go Beyond" (ICLR 2025, arXiv 2502.19301); reference code open-unlearning's
``compute_wga_loss`` (``src/trainer/utils.py``) called by ``WGA.compute_loss``
(``src/trainer/unlearn/wga.py``). With ``p_t = πθ(y_t | x_<t)`` of each answer token:

    L_WGA(θ) = −mean_{answer tokens t of the batch} [ sg(p_t)^β · NLL_t(θ) ]
    L(θ) = c_forget · L_WGA(θ; forget) + c_rt · mean_token NLL(θ; retain)

``sg`` stops the gradient: the weight only scales each token's ascent step, so tokens already
forgotten (small ``p_t``) stop being pushed, which keeps the ascent bounded in practice. The mean
is over the label tokens of the whole batch (one token mean, as Hugging Face's loss). Likelihoods
in float32 here (the model's dtype in the reference).

Defaults are open-unlearning's WGA config (``configs/trainer/WGA.yaml``): β = 1,
``c_forget = 1`` (``gamma``), retain NLL with ``c_rt = 1`` (``alpha``). ``retain="kl"`` uses GradDiff's
KL (``kl_mask`` default ``"all"``: open-unlearning's ``compute_kl_divergence``). The reference
builds a reference model for WGA that it never reads; here WGA needs none.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from unlearn.data.formatting import IGNORE_INDEX
from unlearn.losses.base import LossOutput, UnlearningLoss, check_non_negative, forward_logits, token_nll
from unlearn.losses.retain import attach_retain_term

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


def weighted_ascent(logits: Tensor, labels: Tensor, weight: Callable[[Tensor], Tensor]) -> Tensor:
    """``−mean_t [weight(sg(p_t)) · NLL_t]`` over the label tokens of the batch (0 without any).

    Args:
        logits: ``(B, T, V)`` policy logits.
        labels: ``(B, T)`` labels, ``-100`` where not scored.
        weight: Maps the detached token probabilities ``p_t`` to their weights.
    """
    nll = token_nll(logits, labels)
    scored = labels[:, 1:] != IGNORE_INDEX
    weights = weight(torch.exp(-nll.detach()))
    return -(weights * nll)[scored].sum() / scored.sum().clamp(min=1)


class WGA(UnlearningLoss):
    """Likelihood-weighted gradient ascent on the forget batch plus a retain term.

    Args:
        beta: β >= 0, the power of the token weight ``p_t^β`` (0 is plain gradient ascent).
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
        beta: float = 1.0,
        c_forget: float = 1.0,
        retain: str = "nll",
        c_rt: float = 1.0,
        c_kl: float = 1.0,
        kl_mask: str = "all",
        max_length: int | None = None,
    ) -> None:
        self.beta = check_non_negative("beta", beta)
        self.c_forget = check_non_negative("c_forget", c_forget)
        attach_retain_term(self, retain, c_rt, c_kl, kl_mask, max_length)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None = None
    ) -> LossOutput:
        forget = batch["forget"]
        forget_loss = weighted_ascent(forward_logits(policy, forget), forget["labels"], lambda p: p ** self.beta)
        retain_loss = self.retain_term(policy, batch.get("retain"), reference)
        return LossOutput.combine(self.c_forget * forget_loss, retain_loss, {"wga": forget_loss.detach()})
