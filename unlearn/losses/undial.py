"""UNDIAL: self-distillation with adjusted logits.

Dong, Lin, Belkin, Huerta, Vulić, "UNDIAL: Self-Distillation with Adjusted Logits for Robust
Unlearning in Large Language Models" (NAACL 2025, arXiv 2402.10052). The authors published no
code; the reference is open-unlearning's ``compute_undial_loss`` (``src/trainer/utils.py``) called
by ``UNDIAL.compute_loss`` (``src/trainer/unlearn/undial.py``). The student (the policy) is
distilled towards the frozen teacher's (the reference's) next-token distribution with the logit of
the token that actually follows lowered by β:

    p̃_t = softmax(z_ref,t − β · onehot(y_{t+1}))
    L_UNDIAL(θ) = mean over every position t of the batch of  −Σ_v p̃_t(v) · log πθ(v | x_≤t)
    L(θ) = c_forget · L_UNDIAL(θ; forget) + retain term

The loss is bounded (its minimum is the adjusted teacher itself), so it does not collapse the way
gradient ascent does.

Computed exactly as the reference does, quirks included:

* the mean runs over **every** shifted position of the forget batch, ``B·(T−1)`` of them (prompt,
  answer and padding): the reference builds the cross-entropy with no ignore index. Prompt and
  padding positions are plain self-distillation towards the teacher;
* at positions whose label is ``-100`` the reference writes its one-hot at index ``-100``, which
  PyTorch wraps to token ``V − 100``: that token's teacher logit is lowered by β there too. It is
  reproduced (for ``V >= 100``; the reference fails on smaller vocabularies, where nothing is lowered
  here). The token is an arbitrary, usually rare one, so this changes the loss very little;
* float32 softmax and cross-entropy here (the model's dtype in the reference).

Defaults are open-unlearning's UNDIAL config (``configs/trainer/UNDIAL.yaml``): β = 10,
``c_forget = 1`` (``gamma``), and no retain term (``alpha: 0.0``; its README: the paper does not use
the retain set). ``retain="nll"`` / ``"kl"`` add GradDiff's retain term (``kl_mask`` default
``"all"``: open-unlearning's ``compute_kl_divergence``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from unlearn.data.formatting import IGNORE_INDEX
from unlearn.losses.base import (
    LossOutput,
    UnlearningLoss,
    check_non_negative,
    check_positive,
    forward_logits,
    require_reference,
)
from unlearn.losses.retain import attach_retain_term

if TYPE_CHECKING:
    from unlearn.reference.references import Reference

# Where the reference's one-hot lands for an ignored label: index -100 counts from the end.
WRAPPED_INDEX = IGNORE_INDEX


def adjusted_teacher(ref_logits: Tensor, labels: Tensor, beta: float) -> Tensor:
    """The distillation target ``softmax(z_ref − β · onehot(next label))`` at every shifted position.

    Args:
        ref_logits: ``(B, T, V)`` teacher logits.
        labels: ``(B, T)`` labels.
        beta: The penalty β on the true next token.

    Returns:
        ``(B, T−1, V)`` float32 probabilities.
    """
    teacher = ref_logits[:, :-1].float()
    targets = labels[:, 1:].to(teacher.device)
    vocab = teacher.size(-1)
    ignored = targets == IGNORE_INDEX
    # The reference's `mask[b, s, labels] = 1` with a label of -100 marks token V - 100 (see the docstring).
    index = torch.where(ignored, torch.full_like(targets, vocab + WRAPPED_INDEX), targets)
    onehot = torch.zeros_like(teacher).scatter_(-1, index.clamp(min=0).unsqueeze(-1), 1.0)
    if vocab + WRAPPED_INDEX < 0:
        onehot = onehot * (~ignored).unsqueeze(-1)
    return F.softmax(teacher - beta * onehot, dim=-1)


def undial_term(logits: Tensor, ref_logits: Tensor, labels: Tensor, beta: float) -> Tensor:
    """Mean over all ``B·(T−1)`` shifted positions of the cross-entropy to the adjusted teacher."""
    target = adjusted_teacher(ref_logits.to(logits.device), labels, beta)
    log_probs = F.log_softmax(logits[:, :-1].float(), dim=-1)
    return -(target * log_probs).sum(dim=-1).mean()


class UNDIAL(UnlearningLoss):
    """Self-distillation on the forget batch towards the reference with the true token's logit lowered.

    Args:
        beta: β > 0, how far the true next token's teacher logit is lowered.
        c_forget: Weight of the distillation term (open-unlearning's ``gamma``).
        retain: ``"none"`` (default, the paper's), ``"nll"`` or ``"kl"``.
        c_rt: Weight of the retain NLL (``retain="nll"``; open-unlearning's ``alpha``).
        c_kl: Weight of the retain KL (``retain="kl"``).
        kl_mask: ``"all"`` (open-unlearning's), ``"answer"`` or ``"padded"`` (``retain="kl"``).
        max_length: ``data.max_length``; needed by ``kl_mask="padded"``.
    """

    needs_reference_logits = True

    def __init__(
        self,
        *,
        beta: float = 10.0,
        c_forget: float = 1.0,
        retain: str = "none",
        c_rt: float = 1.0,
        c_kl: float = 1.0,
        kl_mask: str = "all",
        max_length: int | None = None,
    ) -> None:
        self.beta = check_positive("beta", beta)
        self.c_forget = check_non_negative("c_forget", c_forget)
        attach_retain_term(self, retain, c_rt, c_kl, kl_mask, max_length)
        self.needs_reference_logits = True  # the teacher, whatever the retain term reads

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None
    ) -> LossOutput:
        reference = require_reference(reference, "undial")
        forget = batch["forget"]
        logits = forward_logits(policy, forget)
        forget_loss = undial_term(logits, reference.logits(forget), forget["labels"], self.beta)
        retain_loss = self.retain_term(policy, batch.get("retain"), reference)
        return LossOutput.combine(self.c_forget * forget_loss, retain_loss, {"undial": forget_loss.detach()})
