"""The retain term shared by GradDiff, KL, IDK, DPO, NPO-RT, NPO-KL and SimNPO.

It keeps the policy close to its old self on data that must not be forgotten, either by fitting the
retain answers (NLL) or by matching the reference's next-token distributions there (KL).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor

from unlearn.losses.base import (
    IGNORE_INDEX,
    check_choice,
    check_non_negative,
    forward_logits,
    token_mean_nll,
)

if TYPE_CHECKING:
    from unlearn.reference.references import Reference

RETAIN_KINDS = ("nll", "kl", "none")
KL_MASKS = ("answer", "all")


class RetainTerm:
    """``coeff · NLL`` or ``coeff · KL(π_ref ‖ π_θ)`` on the retain batch, or nothing.

    ``kind="nll"`` is the token-mean NLL of the retain answers (Hugging Face's ``loss``).

    ``kind="kl"`` is ``KL(π_ref ‖ π_θ) = Σ_v π_ref(v) (log π_ref(v) − log π_θ(v))`` per position,
    averaged over positions chosen by ``kl_mask``:

    * ``"answer"`` (default): the positions that predict an answer token (shifted label ``!= -100``).
      Prompt and padding positions say nothing about the retain answers, and padding logits are
      arbitrary, so they are left out.
    * ``"all"``: the NPO reference code, ``F.kl_div(log_softmax(θ), log_softmax(ref),
      reduction="batchmean", log_target=True)`` on logits flattened to ``(B·T, V)``; every position
      counts, prompt and padding included, and the sum is divided by ``B·T``.

    Args:
        kind: ``"nll"``, ``"kl"`` or ``"none"``.
        coeff: Weight of the term in the total loss, ``>= 0``.
        kl_mask: ``"answer"`` or ``"all"``; read only when ``kind="kl"``.
    """

    def __init__(self, kind: str = "nll", coeff: float = 1.0, kl_mask: str = "answer") -> None:
        self.kind = check_choice("retain", kind, RETAIN_KINDS)
        self.coeff = check_non_negative("coeff", coeff)
        self.kl_mask = check_choice("kl_mask", kl_mask, KL_MASKS)

    @property
    def uses_retain(self) -> bool:
        """Whether the retain batch is read at all."""
        return self.kind != "none"

    @property
    def needs_reference_logits(self) -> bool:
        """Whether the reference's full distribution on the retain batch is read."""
        return self.kind == "kl"

    def __call__(
        self, policy: Any, retain_inputs: dict[str, Tensor] | None, reference: Reference | None
    ) -> Tensor | None:
        """Return the weighted retain term, or ``None`` when ``kind="none"``.

        Args:
            policy: Causal LM being unlearned.
            retain_inputs: The ``"retain"`` split of the batch.
            reference: :class:`~unlearn.reference.references.Reference`; read only when ``kind="kl"``.
        """
        if self.kind == "none":
            return None
        if retain_inputs is None:
            raise ValueError(f"retain term {self.kind!r} needs batch['retain']")
        if self.kind == "kl" and reference is None:
            raise ValueError("retain term 'kl' needs a reference model, got reference=None")
        logits = forward_logits(policy, retain_inputs)
        if self.kind == "nll":
            return self.coeff * token_mean_nll(logits, retain_inputs["labels"])
        ref_logits = reference.logits(retain_inputs)
        return self.coeff * kl_ref_to_policy(logits, ref_logits, retain_inputs["labels"], self.kl_mask)

    def __repr__(self) -> str:
        return f"RetainTerm(kind={self.kind!r}, coeff={self.coeff}, kl_mask={self.kl_mask!r})"


def kl_ref_to_policy(
    logits: Tensor, ref_logits: Tensor, labels: Tensor, kl_mask: str = "answer"
) -> Tensor:
    """Mean per-position ``KL(π_ref ‖ π_θ)``; see :class:`RetainTerm` for the two masks.

    Args:
        logits: ``(B, T, V)`` policy logits.
        ref_logits: ``(B, T, V)`` reference logits, no grad.
        labels: ``(B, T)`` labels, ``-100`` on prompt and padding.
        kl_mask: ``"answer"`` or ``"all"``.

    Returns:
        Scalar float32 KL.
    """
    vocab = logits.size(-1)
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_ref = F.log_softmax(ref_logits.to(log_p.device).float(), dim=-1)
    if kl_mask == "all":
        return F.kl_div(
            log_p.view(-1, vocab), log_ref.view(-1, vocab), reduction="batchmean", log_target=True
        )
    # Position t predicts labels[t+1]; only those feeding an answer token are compared.
    per_position = F.kl_div(log_p[:, :-1], log_ref[:, :-1], reduction="none", log_target=True).sum(dim=-1)
    mask = (labels[:, 1:] != IGNORE_INDEX).to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)


def select_retain_term(retain: str, c_rt: float, c_kl: float, kl_mask: str) -> RetainTerm:
    """Build the retain term of a strategy whose retain kind is a setting (DPO, SimNPO).

    ``c_rt`` weighs the NLL term and ``c_kl`` the KL term, the names the other strategies use.
    """
    kind = check_choice("retain", retain, RETAIN_KINDS)
    coeff = {"nll": c_rt, "kl": c_kl, "none": 0.0}[kind]
    return RetainTerm(kind, coeff, kl_mask)


def attach_retain_term(loss: Any, retain: str, c_rt: float, c_kl: float, kl_mask: str) -> None:
    """Give ``loss`` a selectable retain term (``none``, ``nll`` or ``kl``) and the flags it brings.

    Sets ``c_rt``, ``c_kl``, ``retain_term``, ``retain`` and ``kl_mask`` on ``loss``, and takes its
    ``uses_retain`` / ``needs_reference_logits`` from the term (DPO and SimNPO use this).
    """
    loss.c_rt = check_non_negative("c_rt", c_rt)
    loss.c_kl = check_non_negative("c_kl", c_kl)
    loss.retain_term = select_retain_term(retain, loss.c_rt, loss.c_kl, kl_mask)
    loss.retain, loss.kl_mask = loss.retain_term.kind, loss.retain_term.kl_mask
    loss.uses_retain = loss.retain_term.uses_retain
    loss.needs_reference_logits = loss.retain_term.needs_reference_logits
