"""DPO with "I don't know" as the preferred answer and the true forget answer as the rejected one.

Rafailov et al. 2023, "Direct Preference Optimization" (arXiv 2305.18290), used for unlearning in
TOFU (arXiv 2401.06121) and as a baseline in NPO (arXiv 2404.05868):

    L(θ) = −(2/β) · mean_i logσ(β · [log(πθ/π_ref)(idk_i) − log(πθ/π_ref)(forget_i)])
           (+ optional retain term)

where ``log π`` is the sequence **sum** of answer-token log-probs. The factor 2/β (instead of DPO's
1) follows the NPO code (the ``dpo`` / ``dpo_grad_diff`` / ``dpo_KL`` branches of
``CustomTrainerForgetting.compute_loss``, ``TOFU/dataloader.py``, sums from ``get_batch_loss`` in
``TOFU/data_module.py``), so DPO and NPO losses share a scale. Default β = 0.1 is the NPO paper's;
the retain term is off by default, as in that baseline. ``retain="nll"`` with ``c_rt = 1`` is
``dpo_grad_diff`` (a token-mean retain NLL added), ``retain="kl"`` with ``kl_mask="padded"`` and
``c_kl = 1`` is ``dpo_KL``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor

from unlearn.losses.base import (
    LossOutput,
    UnlearningLoss,
    check_positive,
    forward_logits,
    require_reference,
    sequence_nll,
)
from unlearn.losses.retain import attach_retain_term

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


class IdkDPO(UnlearningLoss):
    """DPO preferring an "I don't know" answer over the true one.

    ``batch["idk"]`` row ``i`` must hold the same question as ``batch["forget"]`` row ``i``.

    Args:
        beta: Inverse temperature β > 0.
        retain: ``"none"``, ``"nll"`` or ``"kl"``.
        c_rt: Weight of the retain NLL (``retain="nll"``).
        c_kl: Weight of the retain KL (``retain="kl"``).
        kl_mask: ``"answer"``, ``"all"`` or ``"padded"`` (``retain="kl"``; see ``RetainTerm``).
        max_length: ``data.max_length``; needed by ``retain="kl"`` with ``kl_mask="padded"``.
    """

    needs_reference_logps = True
    uses_idk = True

    def __init__(
        self,
        *,
        beta: float = 0.1,
        retain: str = "none",
        c_rt: float = 1.0,
        c_kl: float = 1.0,
        kl_mask: str = "answer",
        max_length: int | None = None,
    ) -> None:
        self.beta = check_positive("beta", beta)
        attach_retain_term(self, retain, c_rt, c_kl, kl_mask, max_length)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None
    ) -> LossOutput:
        reference = require_reference(reference, "dpo")
        forget, idk = batch["forget"], batch["idk"]
        if idk["input_ids"].size(0) != forget["input_ids"].size(0):
            raise ValueError("dpo pairs batch['idk'] with batch['forget'] row by row; their sizes differ")
        forget_nll = sequence_nll(forward_logits(policy, forget), forget["labels"])
        idk_nll = sequence_nll(forward_logits(policy, idk), idk["labels"])
        ref_forget = reference.sequence_logps(forget, "forget").to(forget_nll)
        ref_idk = reference.sequence_logps(idk, "idk").to(idk_nll)
        chosen = -idk_nll - ref_idk
        rejected = -forget_nll - ref_forget
        forget_loss = -(2.0 / self.beta) * F.logsigmoid(self.beta * (chosen - rejected)).mean()
        extras = {
            "forget_nll": forget_nll.detach().mean(),
            "idk_nll": idk_nll.detach().mean(),
            "reward_margin": (chosen - rejected).detach().mean(),
        }
        retain_loss = self.retain_term(policy, batch.get("retain"), reference)
        return LossOutput.combine(forget_loss, retain_loss, extras)
