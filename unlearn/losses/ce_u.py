"""CE-U: cross-entropy unlearning, towards the model's own distribution with the true token removed.

Yang, "CE-U: Cross Entropy Unlearning" (arXiv 2503.01224); reference code open-unlearning's
``src/trainer/unlearn/ceu.py`` (``cross_entropy_unlearning_loss`` and ``compute_batch_ceu``,
called by ``CEU.compute_loss``). At each scored position ``t`` with next token ``y``, the target is
the policy's own (detached) distribution with ``y``'s logit set to ``−∞``:

    q_t = softmax(sg(z_t) with z_t[y] = −∞)
    L(θ) = mean over scored positions t of  −Σ_v q_t(v) · log πθ(v | x_≤t)

Its gradient is ``softmax(z_t) − q_t``: it lowers the true token and leaves the others'
proportions as they were, with no ascent to diverge. There is no retain term.

Quirk kept from the reference: the first ``ignore_first_n_answer_tokens`` label tokens of each row
are not scored (the "trick" of the paper's Training Settings footnote; default 1: the first answer
token is left out). They are counted on the unshifted labels, as ``compute_batch_ceu`` does, so for
TOFU's answers the first answer token is never pushed down. A batch with no scored position gives 0
here (the reference: NaN, the mean of nothing). Float32 here (the model's dtype in the reference).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch.nn.functional as F
from torch import Tensor

from unlearn.data.formatting import IGNORE_INDEX
from unlearn.losses.base import LossOutput, UnlearningLoss, check_int, forward_logits

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


def drop_first_answer_tokens(labels: Tensor, n: int) -> Tensor:
    """``labels`` with the first ``n`` label tokens of each row set to ``-100``."""
    scored = labels != IGNORE_INDEX
    first = scored & (scored.long().cumsum(dim=-1) <= n)
    return labels.masked_fill(first, IGNORE_INDEX)


def ce_u_term(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean over scored shifted positions of the cross-entropy to ``softmax(sg(z) with z[y] = −∞)``."""
    shift_logits, shift_labels = logits[:, :-1].float(), labels[:, 1:]
    scored = shift_labels != IGNORE_INDEX
    valid_logits, valid_labels = shift_logits[scored], shift_labels[scored]
    if valid_labels.numel() == 0:
        return shift_logits.sum() * 0.0
    target_logits = valid_logits.detach().scatter(-1, valid_labels.unsqueeze(-1), float("-inf"))
    target = F.softmax(target_logits, dim=-1)
    return -(target * F.log_softmax(valid_logits, dim=-1)).sum(dim=-1).mean()


class CEU(UnlearningLoss):
    """Cross-entropy to the policy's own distribution without the true token, on the forget batch.

    Args:
        ignore_first_n_answer_tokens: Label tokens left unscored at the start of each answer (>= 0;
            the reference's default 1).
    """

    def __init__(self, *, ignore_first_n_answer_tokens: int = 1) -> None:
        self.ignore_first_n_answer_tokens = check_int("ignore_first_n_answer_tokens", ignore_first_n_answer_tokens)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None = None
    ) -> LossOutput:
        forget = batch["forget"]
        labels = drop_first_answer_tokens(forget["labels"], self.ignore_first_n_answer_tokens)
        loss = ce_u_term(forward_logits(policy, forget), labels)
        return LossOutput.combine(loss, extras={"scored_tokens": (labels[:, 1:] != IGNORE_INDEX).sum().float()})
