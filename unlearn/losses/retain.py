"""The retain term shared by GradDiff, KL, IDK, DPO, NPO-RT, NPO-KL and SimNPO.

It keeps the policy close to its old self on data that must not be forgotten, either by fitting the
retain answers (NLL) or by matching the reference's next-token distributions there (KL).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
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
KL_MASKS = ("answer", "all", "padded")


class RetainTerm:
    """``coeff · NLL`` or ``coeff · KL(π_ref ‖ π_θ)`` on the retain batch, or nothing.

    ``kind="nll"`` is the token-mean NLL of the retain answers (Hugging Face's ``loss``).

    ``kind="kl"`` is ``KL(π_ref ‖ π_θ) = Σ_v π_ref(v) (log π_ref(v) − log π_θ(v))`` per position,
    summed over positions chosen by ``kl_mask`` and divided as it says:

    * ``"answer"`` (default): the positions that predict an answer token (shifted label ``!= -100``),
      divided by their number. Prompt and padding positions say nothing about the retain answers,
      and padding logits are arbitrary, so they are left out.
    * ``"all"``: open-unlearning's ``compute_kl_divergence`` (``src/trainer/utils.py``),
      ``F.kl_div(log_softmax(θ), log_softmax(ref), reduction="batchmean", log_target=True)`` on
      logits flattened to ``(B·T, V)``: every position of the batch as collated (prompt, answer,
      EOS, padding, and the last position, which predicts nothing) divided by ``B·T``, where ``T`` is
      the batch's longest sequence (batches are padded dynamically, as open-unlearning's are).
    * ``"padded"``: the NPO code's scale (``CustomTrainerForgetting.compute_loss`` in
      ``TOFU/dataloader.py``, branches ``KL``, ``npo_KL`` and ``dpo_KL``, of
      ``licong-lin/negative-preference-optimization``). There ``convert_raw_data_to_model_format``
      (``TOFU/data_module.py``) pads every sequence to ``max_length`` (500) with the EOS id and
      attention mask 0, so the same ``batchmean`` divides by ``B·max_length``, and the padding
      positions up to ``max_length`` are in the sum with whatever KL the two models give them. To
      get that number the retain batch is first right-padded to ``max_length`` (:func:`pad_to_length`:
      attention mask 0, label ``-100``, each row continued with its last token id, which is EOS or
      the pad id), then the sum over all ``B·max_length`` positions is divided by ``B·max_length``.

    ``c_kl`` is comparable only between runs with the same mask (docs/definitions.md, "KL masks").

    Args:
        kind: ``"nll"``, ``"kl"`` or ``"none"``.
        coeff: Weight of the term in the total loss, ``>= 0``.
        kl_mask: ``"answer"``, ``"all"`` or ``"padded"``; read only when ``kind="kl"``.
        max_length: The padded width of ``kl_mask="padded"`` (``data.max_length``, passed by the
            composition root); required by that mask, unused otherwise.
    """

    def __init__(
        self, kind: str = "nll", coeff: float = 1.0, kl_mask: str = "answer", max_length: int | None = None
    ) -> None:
        self.kind = check_choice("retain", kind, RETAIN_KINDS)
        self.coeff = check_non_negative("coeff", coeff)
        self.kl_mask = check_choice("kl_mask", kl_mask, KL_MASKS)
        self.max_length = check_max_length(max_length)
        if self.kind == "kl" and self.kl_mask == "padded" and self.max_length is None:
            raise ValueError("kl_mask 'padded' divides the summed KL by batch size × max_length and needs "
                             "max_length (fit passes data.max_length)")

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
        if self.kind == "kl" and self.kl_mask == "padded":
            retain_inputs = pad_to_length(retain_inputs, self.max_length)
        logits = forward_logits(policy, retain_inputs)
        if self.kind == "nll":
            return self.coeff * token_mean_nll(logits, retain_inputs["labels"])
        ref_logits = reference.logits(retain_inputs)
        return self.coeff * kl_ref_to_policy(logits, ref_logits, retain_inputs["labels"], self.kl_mask,
                                             self.max_length)

    def __repr__(self) -> str:
        return (f"RetainTerm(kind={self.kind!r}, coeff={self.coeff}, kl_mask={self.kl_mask!r}, "
                f"max_length={self.max_length})")


def kl_ref_to_policy(
    logits: Tensor, ref_logits: Tensor, labels: Tensor, kl_mask: str = "answer", max_length: int | None = None
) -> Tensor:
    """Summed per-position ``KL(π_ref ‖ π_θ)`` over the divisor of ``kl_mask``; see :class:`RetainTerm`.

    Args:
        logits: ``(B, T, V)`` policy logits.
        ref_logits: ``(B, T, V)`` reference logits, no grad.
        labels: ``(B, T)`` labels, ``-100`` on prompt and padding.
        kl_mask: ``"answer"`` (sum / answer positions), ``"all"`` (sum / ``B·T``) or ``"padded"``
            (sum / ``B·max_length``; positions missing from a batch narrower than ``max_length``
            count as 0, so :class:`RetainTerm` pads the batch first).
        max_length: The divisor's width for ``"padded"``.

    Returns:
        Scalar float32 KL.
    """
    vocab = logits.size(-1)
    log_p = F.log_softmax(logits.float(), dim=-1)
    log_ref = F.log_softmax(ref_logits.to(log_p.device).float(), dim=-1)
    if kl_mask in ("all", "padded"):
        # F.kl_div(..., reduction="batchmean") on the flattened (B·T, V) logits is this sum / (B·T).
        total = F.kl_div(log_p.view(-1, vocab), log_ref.view(-1, vocab), reduction="sum", log_target=True)
        width = logits.size(1) if kl_mask == "all" else max_length
        return total / (logits.size(0) * width)
    # Position t predicts labels[t+1]; only those feeding an answer token are compared.
    per_position = F.kl_div(log_p[:, :-1], log_ref[:, :-1], reduction="none", log_target=True).sum(dim=-1)
    mask = (labels[:, 1:] != IGNORE_INDEX).to(per_position.dtype)
    return (per_position * mask).sum() / mask.sum().clamp(min=1)


def pad_to_length(inputs: dict[str, Tensor], length: int) -> dict[str, Tensor]:
    """Right-pad a batch to ``length`` positions, as ``convert_raw_data_to_model_format`` pads every row.

    The new positions get attention mask 0 and label ``-100``; their input id continues each row with
    its last column, which is the pad id on a padded row and the closing EOS on a full one (the
    reference pads with EOS, the pad id here when the tokenizer has none). Real positions never
    attend to them, so only the new positions' own logits depend on that id.

    Raises:
        ValueError: the batch is already wider than ``length``.
    """
    input_ids = inputs["input_ids"]
    rows, width = input_ids.shape
    if width > length:
        raise ValueError(f"kl_mask 'padded' pads the retain batch to max_length={length}, but it is {width} wide")
    if width == length:
        return inputs
    extra = length - width
    mask, labels = inputs["attention_mask"], inputs["labels"]
    return {
        **inputs,
        "input_ids": torch.cat([input_ids, input_ids[:, -1:].expand(rows, extra)], dim=1),
        "attention_mask": torch.cat([mask, mask.new_zeros(rows, extra)], dim=1),
        "labels": torch.cat([labels, labels.new_full((rows, extra), IGNORE_INDEX)], dim=1),
    }


def check_max_length(value: Any) -> int | None:
    """Return ``value`` (``None`` or an int >= 1) or raise ``ValueError``."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"max_length must be an integer >= 1 or None, got {value!r}")
    return value


def select_retain_term(
    retain: str, c_rt: float, c_kl: float, kl_mask: str, max_length: int | None = None
) -> RetainTerm:
    """Build the retain term of a strategy whose retain kind is a setting (DPO, SimNPO).

    ``c_rt`` weighs the NLL term and ``c_kl`` the KL term, the names the other strategies use.
    """
    kind = check_choice("retain", retain, RETAIN_KINDS)
    coeff = {"nll": c_rt, "kl": c_kl, "none": 0.0}[kind]
    return RetainTerm(kind, coeff, kl_mask, max_length)


def attach_retain_term(
    loss: Any, retain: str, c_rt: float, c_kl: float, kl_mask: str, max_length: int | None = None
) -> None:
    """Give ``loss`` a selectable retain term (``none``, ``nll`` or ``kl``) and the flags it brings.

    Sets ``c_rt``, ``c_kl``, ``retain_term``, ``retain``, ``kl_mask`` and ``max_length`` on ``loss``,
    and takes its ``uses_retain`` / ``needs_reference_logits`` from the term (DPO and SimNPO use this).
    """
    loss.c_rt = check_non_negative("c_rt", c_rt)
    loss.c_kl = check_non_negative("c_kl", c_kl)
    loss.retain_term = select_retain_term(retain, loss.c_rt, loss.c_kl, kl_mask, max_length)
    loss.retain, loss.kl_mask = loss.retain_term.kind, loss.retain_term.kl_mask
    loss.max_length = loss.retain_term.max_length
    loss.uses_retain = loss.retain_term.uses_retain
    loss.needs_reference_logits = loss.retain_term.needs_reference_logits
