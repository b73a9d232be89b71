"""IDK fine-tuning: teach the model to refuse on forget questions.

TOFU's "IDK" baseline (Maini et al. 2024, arXiv 2401.06121): each forget question is paired with a
random "I don't know" answer (``batch["idk"]``) that is fitted like ordinary fine-tuning data,
together with the retain batch. ``idk_mean`` says how the two batches' token NLLs are averaged:

* ``"joint"`` (default), the reference code's: the ``idk`` branch of
  ``CustomTrainerForgetting.compute_loss`` in ``dataloader.py`` (``locuslab/tofu``, and
  ``TOFU/dataloader.py`` of ``licong-lin/negative-preference-optimization``) concatenates the IDK
  and retain ``input_ids`` / ``labels`` / ``attention_mask`` along the batch and takes Hugging
  Face's loss of one forward pass: **one** token mean over the label tokens of both batches,

      L(θ) = (Σ NLL(θ; idk) + c_rt · Σ NLL(θ; retain)) / (|idk tokens| + |retain tokens|)

  (both batches are padded to the same ``max_length`` there, so the concatenation lines up; padding
  carries label ``-100`` and counts for nothing). The sums here come from two forward passes, which
  gives the same number without padding the two batches to one width. The reference has no
  coefficient: ``c_rt = 1`` is its loss; another ``c_rt`` weighs the retain tokens inside the mean.
* ``"separate"``: two token means, added,

      L(θ) = mean_token NLL(θ; idk) + c_rt · mean_token NLL(θ; retain)

  which weighs each batch equally whatever its number of answer tokens (this project's earlier form).

Default ``c_rt = 1`` follows the TOFU and NPO reference code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from unlearn.losses.base import (
    LossOutput,
    UnlearningLoss,
    check_choice,
    check_non_negative,
    forward_logits,
    token_counts,
    token_mean_nll,
    token_nll,
)
from unlearn.losses.retain import RetainTerm

if TYPE_CHECKING:
    from unlearn.reference.references import Reference

IDK_MEANS = ("joint", "separate")


class IdkNLL(UnlearningLoss):
    """NLL of "I don't know" answers to forget questions plus retain NLL.

    Args:
        c_rt: Weight of the retain NLL.
        idk_mean: ``"joint"`` (one token mean over the IDK and retain tokens, the reference code's)
            or ``"separate"`` (a token mean per batch, added).
    """

    uses_retain = True
    uses_idk = True

    def __init__(self, *, c_rt: float = 1.0, idk_mean: str = "joint") -> None:
        self.c_rt = check_non_negative("c_rt", c_rt)
        self.idk_mean = check_choice("idk_mean", idk_mean, IDK_MEANS)
        self.retain_term = RetainTerm("nll", self.c_rt)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None = None
    ) -> LossOutput:
        idk, retain = batch["idk"], batch.get("retain")
        if self.idk_mean == "separate":
            forget_loss = token_mean_nll(forward_logits(policy, idk), idk["labels"])
            return LossOutput.combine(forget_loss, self.retain_term(policy, retain, reference))
        if retain is None:
            raise ValueError("idk needs batch['retain']")
        idk_sum = token_nll(forward_logits(policy, idk), idk["labels"]).sum()
        retain_sum = token_nll(forward_logits(policy, retain), retain["labels"]).sum()
        idk_tokens, retain_tokens = token_counts(idk["labels"]).sum(), token_counts(retain["labels"]).sum()
        # No label token at all gives 0, as token_mean_nll does.
        tokens = (idk_tokens + retain_tokens).clamp(min=1)
        extras = {"idk_nll": (idk_sum / idk_tokens.clamp(min=1)).detach(),
                  "retain_nll": (retain_sum / retain_tokens.clamp(min=1)).detach()}
        return LossOutput.combine(idk_sum / tokens, self.c_rt * retain_sum / tokens, extras)
