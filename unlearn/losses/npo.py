"""Negative Preference Optimization (NPO).

Zhang, Lin, Bai, Mei, "Negative Preference Optimization: From Catastrophic Collapse to Effective
Unlearning", arXiv 2404.05868. DPO with the forget answer as the only, rejected response:

    L_NPO(θ) = −(2/β) · mean_i logσ(−β · log[πθ(a_i|q_i) / π_ref(a_i|q_i)])
             = −(2/β) · mean_i logσ(β · (NLL(θ; q_i,a_i) − NLL(ref; q_i,a_i)))

with sequence-**sum** NLLs. Its gradient is GA's, ``∇ log πθ``, with each sample weighted by
``2σ(β · log(πθ/π_ref))``; the weight fades as a sample is forgotten, which is why NPO collapses
exponentially slower than GA, and tends to 1 (plain GA on the sum NLL) as β → 0.

Default β = 0.1 is the paper's TOFU setting (its reference code, folder ``TOFU/``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
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

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


def npo_term(
    policy: Any, forget: dict[str, Tensor], reference: Reference | None, beta: float
) -> tuple[Tensor, dict[str, Tensor]]:
    """NPO's forget term and what is worth logging about it (one policy forward).

    Args:
        policy: Causal LM being unlearned.
        forget: The ``"forget"`` split of the batch.
        reference: :class:`~unlearn.reference.references.Reference` giving ``log π_ref(a|q)`` per row.
        beta: Inverse temperature β > 0.

    Returns:
        The scalar loss and detached extras: ``forget_nll`` (mean sequence NLL), ``log_ratio``
        (mean ``log πθ − log π_ref``) and ``sample_weight`` (mean ``2σ(β · log_ratio)``).
    """
    reference = require_reference(reference, "npo")
    nll = sequence_nll(forward_logits(policy, forget), forget["labels"])
    ref_logps = reference.sequence_logps(forget, "forget").to(device=nll.device, dtype=nll.dtype)
    log_ratio = -nll - ref_logps
    loss = -(2.0 / beta) * F.logsigmoid(-beta * log_ratio).mean()
    log_ratio = log_ratio.detach()
    extras = {
        "forget_nll": nll.detach().mean(),
        "log_ratio": log_ratio.mean(),
        "sample_weight": (2.0 * torch.sigmoid(beta * log_ratio)).mean(),
    }
    return loss, extras


class NPO(UnlearningLoss):
    """NPO on the forget batch alone.

    Args:
        beta: Inverse temperature β > 0; 0.1 in the paper.
    """

    needs_reference_logps = True

    def __init__(self, *, beta: float = 0.1) -> None:
        self.beta = check_positive("beta", beta)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None
    ) -> LossOutput:
        forget_loss, extras = npo_term(policy, batch["forget"], reference, self.beta)
        return LossOutput.combine(forget_loss, extras=extras)
