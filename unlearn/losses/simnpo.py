"""SimNPO: reference-free, length-normalised NPO.

Fan et al., "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM Unlearning",
arXiv 2410.07163:

    L(θ) = c_npo · (−(2/β) · mean_i logσ(−(β/|a_i|) · log πθ(a_i|q_i) − γ))
           + c_rt · mean_token NLL(θ; retain)

``|a_i|`` is the number of label tokens, so the argument is ``β · NLLbar − γ``. With γ = 0 it
does not matter whether γ sits inside or outside the β factor.

Defaults here: β = 2.5, γ = 0, ``c_npo = 1``, retain NLL with ``c_rt = 1``. The SimNPO authors'
TOFU settings (β 2.5 with ``c_npo`` 0.1375 on forget05, β 4.5 with ``c_npo`` 0.125 on forget10,
``c_rt = 1``, γ = 0) are in ``configs/loss/simnpo.yaml`` and ``simnpo_forget05.yaml``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor

from unlearn.losses.base import (
    LossOutput,
    UnlearningLoss,
    check_non_negative,
    check_positive,
    forward_logits,
    sequence_nll,
    token_counts,
)
from unlearn.losses.retain import attach_retain_term

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


class SimNPO(UnlearningLoss):
    """Length-normalised NPO without a reference model, plus an optional retain term.

    Args:
        beta: Inverse temperature β > 0.
        gamma: Reward margin γ.
        c_npo: Weight of the SimNPO term.
        retain: ``"nll"`` (default), ``"kl"`` or ``"none"``.
        c_rt: Weight of the retain NLL (``retain="nll"``).
        c_kl: Weight of the retain KL (``retain="kl"``, which needs a reference after all).
        kl_mask: ``"answer"``, ``"all"`` or ``"padded"`` (``retain="kl"``; see ``RetainTerm``).
        max_length: ``data.max_length``; needed by ``retain="kl"`` with ``kl_mask="padded"``.
    """

    uses_retain = True

    def __init__(
        self,
        *,
        beta: float = 2.5,
        gamma: float = 0.0,
        c_npo: float = 1.0,
        retain: str = "nll",
        c_rt: float = 1.0,
        c_kl: float = 1.0,
        kl_mask: str = "answer",
        max_length: int | None = None,
    ) -> None:
        self.beta = check_positive("beta", beta)
        self.gamma = check_non_negative("gamma", gamma)
        self.c_npo = check_non_negative("c_npo", c_npo)
        attach_retain_term(self, retain, c_rt, c_kl, kl_mask, max_length)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None = None
    ) -> LossOutput:
        forget = batch["forget"]
        nll = sequence_nll(forward_logits(policy, forget), forget["labels"])
        # An answer with no label tokens would divide by zero; it contributes logσ(−γ) instead.
        mean_nll = nll / token_counts(forget["labels"]).clamp(min=1)
        simnpo = -(2.0 / self.beta) * F.logsigmoid(self.beta * mean_nll - self.gamma).mean()
        extras = {"forget_nll": nll.detach().mean(), "forget_token_nll": mean_nll.detach().mean()}
        retain_loss = self.retain_term(policy, batch.get("retain"), reference)
        return LossOutput.combine(self.c_npo * simnpo, retain_loss, extras)
