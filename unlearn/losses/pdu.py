"""PDU: primal–dual unlearning with a logit-margin flattening loss and a retain-loss constraint.

Entesari, Hatami, Khaziev, Ramakrishna, Fazlyab, "Constrained Entropic Unlearning: A Primal-Dual
Framework for Large Language Models" (arXiv 2506.05314); reference code open-unlearning's
``src/trainer/unlearn/pdu.py`` (``PDU.compute_loss``, ``PDU.final_loss_value``), retain term from
``GradDiff.compute_retain_loss`` (``src/trainer/unlearn/grad_diff.py``). The problem is

    min_θ  L_f(θ)   subject to   L_r(θ) <= ε

with the forget loss flattening the logits (its minimum is a uniform next-token distribution),

    L_f(θ) = Σ_{t: label_t ≠ −100} (max_v z_t(v) − mean_v z_t(v))² / #{t: label_t ≠ −100},

and ``L_r`` the token-mean retain NLL (or GradDiff's KL). Each step minimises the Lagrangian
``c_forget · L_f + λ · (L_r − ε)`` and then takes a dual ascent step on the multiplier,

    λ <- max(0, λ + η · (L_r − ε)),

from ``λ_0 = c_rt``, once the first ``dual_warmup_epochs`` epochs are over: ``λ`` grows while the
retain loss is above ``ε`` and shrinks back once it is under.

As the reference computes it:

* ``L_f`` is taken at the positions whose **unshifted** label is scored (``labels != -100``), i.e.
  the logits at the answer tokens and EOS, which predict the token after each; the last prompt
  position (which predicts the first answer token) is not in it. A batch without labels gives 0
  here (the reference: NaN). Float32 here (the model's dtype in the reference).
* ``λ`` is updated after every training batch (every micro-batch under gradient accumulation, as
  the reference's ``compute_loss`` does), with the retain loss of that batch; the loss of the batch
  uses the ``λ`` from before the update. Updates start in epoch ``e`` (0-based) once
  ``e >= dual_warmup_epochs`` (the reference enables them at the end of the epoch where
  ``state.epoch >= dual_warmup_epochs``). ``dual_step_size = 0`` keeps ``λ`` fixed (the reference's
  ``primal_dual: false``).
* Under data parallelism the reference updates each process's ``λ`` from its own batch, so the
  processes drift apart. Here the retain gap ``L_r − ε`` is first averaged over every process
  (:meth:`PDU.update` gets the all-reduce from the training module), so ``λ`` is the same number on
  every rank. ``λ`` is training state: the module saves :meth:`PDU.state_dict` in every checkpoint
  and a resumed run continues from it.
* Not implemented: the reference's ``dual_update_upon: epoch`` (one update per epoch from the mean
  retain loss over a pass through the training loader). Its config and every published PDU run use
  ``step``.

Defaults are open-unlearning's ``configs/trainer/PDU.yaml`` (``dual_step_size 1``, warm-up 5 epochs,
``gamma = alpha = 1``); ``ε`` has no default there (``???``) and 0 here: the method's README says to
pick it a little above the starting model's retain loss. The authors' TOFU values are in
``configs/loss/pdu.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from unlearn.data.formatting import IGNORE_INDEX
from unlearn.losses.base import (
    LossOutput,
    UnlearningLoss,
    check_choice,
    check_non_negative,
    check_number,
    forward_logits,
)
from unlearn.losses.retain import RetainTerm

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


def logit_margin_flattening(logits: Tensor, labels: Tensor) -> Tensor:
    """``mean_t (max_v z_t − mean_v z_t)²`` over the positions whose unshifted label is scored."""
    logits = logits.float()
    margin = (logits.max(dim=-1).values - logits.mean(dim=-1)) ** 2
    mask = (labels != IGNORE_INDEX).to(margin.device, margin.dtype)
    return (margin * mask).sum() / mask.sum().clamp(min=1)


class PDU(UnlearningLoss):
    """Logit-margin flattening on forget under the constraint ``retain loss <= ε``, by primal–dual steps.

    Args:
        c_forget: Weight of the forget loss (open-unlearning's ``gamma``).
        c_rt: Starting value ``λ_0 >= 0`` of the dual variable, the retain term's weight (``alpha``).
        retain_loss_eps: ``ε``, the retain loss the constraint allows.
        dual_step_size: ``η >= 0`` of the dual ascent step; 0 keeps ``λ`` at ``c_rt``.
        dual_warmup_epochs: Epochs before ``λ`` starts to move.
        retain: ``"nll"`` (default) or ``"kl"``: the retain loss ``L_r``.
        kl_mask: ``"all"`` (open-unlearning's), ``"answer"`` or ``"padded"`` (``retain="kl"``).
        max_length: ``data.max_length``; needed by ``kl_mask="padded"``.
    """

    uses_retain = True

    def __init__(
        self,
        *,
        c_forget: float = 1.0,
        c_rt: float = 1.0,
        retain_loss_eps: float = 0.0,
        dual_step_size: float = 1.0,
        dual_warmup_epochs: float = 5.0,
        retain: str = "nll",
        kl_mask: str = "all",
        max_length: int | None = None,
    ) -> None:
        self.c_forget = check_non_negative("c_forget", c_forget)
        self.c_rt = check_non_negative("c_rt", c_rt)
        self.retain_loss_eps = check_number("retain_loss_eps", retain_loss_eps)
        self.dual_step_size = check_non_negative("dual_step_size", dual_step_size)
        self.dual_warmup_epochs = check_non_negative("dual_warmup_epochs", dual_warmup_epochs)
        self.retain = check_choice("retain", retain, ("nll", "kl"))
        self.retain_term = RetainTerm(self.retain, 1.0, kl_mask, max_length)
        self.kl_mask, self.max_length = self.retain_term.kl_mask, self.retain_term.max_length
        self.needs_reference_logits = self.retain_term.needs_reference_logits
        self.retain_preference = self.c_rt  # λ, the dual variable

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None = None
    ) -> LossOutput:
        forget = batch["forget"]
        forget_loss = logit_margin_flattening(forward_logits(policy, forget), forget["labels"])
        gap = self.retain_term(policy, batch.get("retain"), reference) - self.retain_loss_eps
        extras = {"retain_gap": gap.detach(),
                  "retain_preference": torch.tensor(self.retain_preference, device=gap.device)}
        return LossOutput.combine(self.c_forget * forget_loss, self.retain_preference * gap, extras)

    def update(self, out: LossOutput, epoch: int, mean_over_ranks: Callable[[Tensor], Tensor]) -> None:
        """One dual ascent step from the batch's retain gap, averaged over every process first."""
        if self.dual_step_size == 0 or epoch < self.dual_warmup_epochs:
            return
        self.step_dual(float(mean_over_ranks(out.extras["retain_gap"])))

    def step_dual(self, gap: float) -> float:
        """``λ <- max(0, λ + η · gap)``; returns the new ``λ``."""
        self.retain_preference = max(0.0, self.retain_preference + self.dual_step_size * gap)
        return self.retain_preference

    def state_dict(self) -> dict[str, Any]:
        return {"retain_preference": self.retain_preference}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        value = state.get("retain_preference")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise RuntimeError(f"The checkpoint's PDU dual variable is {value!r}, not a finite number >= 0; resume "
                               "with the checkpoint the run wrote.")
        self.retain_preference = float(value)
