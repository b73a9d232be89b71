"""Shared pieces of the unlearning losses: answer-token likelihoods, the output record, the base class.

Every strategy scores only answer tokens: prompt and padding positions carry the label ``-100``.
Logits are shifted the causal way (``logits[:, :-1]`` predicts ``labels[:, 1:]``), exactly as
Hugging Face's ``ForCausalLMLoss`` does, so the numbers here agree with ``model(..., labels=...).loss``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from unlearn.data.formatting import IGNORE_INDEX

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


def _shifted(logits: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Align each position's logits with the token it predicts, in float32.

    Half-precision log-softmax over a large vocabulary loses the small differences NPO's log-ratios
    are made of, so the likelihood is always computed in float32.
    """
    return logits[:, :-1].float(), labels[:, 1:]


def token_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Per-position cross-entropy of the next token.

    Args:
        logits: ``(B, T, V)`` policy or reference logits.
        labels: ``(B, T)`` token ids, ``-100`` where a position is not scored.

    Returns:
        ``(B, T-1)`` float32 negative log-likelihoods, ``0`` at ignored positions.
    """
    shift_logits, shift_labels = _shifted(logits, labels)
    nll = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.size(-1)),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="none",
    )
    return nll.view(shift_labels.shape)


def sequence_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Sum of the answer tokens' negative log-likelihoods, one number per sequence.

    This is ``NLL(θ; q, a) = −log πθ(a | q)``, the quantity NPO and DPO compare between policy and
    reference.

    Args:
        logits: ``(B, T, V)`` logits.
        labels: ``(B, T)`` labels, ``-100`` on prompt and padding.

    Returns:
        ``(B,)`` float32 sequence NLLs.
    """
    return token_nll(logits, labels).sum(dim=-1)


def token_counts(labels: Tensor) -> Tensor:
    """Number of scored tokens per sequence after the causal shift (``|a|`` in the papers).

    Args:
        labels: ``(B, T)`` labels, ``-100`` on prompt and padding.

    Returns:
        ``(B,)`` long counts.
    """
    return (labels[:, 1:] != IGNORE_INDEX).sum(dim=-1)


def token_mean_nll(logits: Tensor, labels: Tensor) -> Tensor:
    """Hugging Face's causal-LM loss: total NLL over the batch divided by its number of label tokens.

    Long answers weigh more than short ones, as in ``model(..., labels=labels).loss``. A batch with
    no label tokens gives ``0`` rather than HF's ``nan`` so that one empty batch cannot poison a run.

    Args:
        logits: ``(B, T, V)`` logits.
        labels: ``(B, T)`` labels, ``-100`` on prompt and padding.

    Returns:
        Scalar float32 loss.
    """
    return token_nll(logits, labels).sum() / token_counts(labels).sum().clamp(min=1)


def forward_logits(policy: Any, inputs: dict[str, Tensor]) -> Tensor:
    """Run a causal LM on one split of a batch and return its logits.

    Only ``input_ids`` and ``attention_mask`` are passed: giving the model ``labels`` would make it
    compute its own loss, a second pass over the logits that no strategy uses.
    """
    return policy(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits


@dataclass
class LossOutput:
    """What one strategy returns for one batch.

    Attributes:
        loss: Scalar that is backpropagated, ``forget_loss + retain_loss``.
        forget_loss: The forget term as added to ``loss`` (coefficient applied).
        retain_loss: The retain term as added to ``loss`` (coefficient applied), or ``None``.
        extras: Detached scalar tensors worth logging (e.g. NPO's mean sample weight).
    """

    loss: Tensor
    forget_loss: Tensor
    retain_loss: Tensor | None = None
    extras: dict[str, Tensor] = field(default_factory=dict)

    @classmethod
    def combine(
        cls, forget_loss: Tensor, retain_loss: Tensor | None = None, extras: dict[str, Tensor] | None = None
    ) -> LossOutput:
        """Build the record from already-weighted terms; ``loss`` is their sum."""
        loss = forget_loss if retain_loss is None else forget_loss + retain_loss
        return cls(loss=loss, forget_loss=forget_loss, retain_loss=retain_loss, extras=extras or {})


class UnlearningLoss:
    """Base class of the strategies in :data:`unlearn.losses.LOSSES`.

    The flags say which inputs a strategy reads, so the training module can skip work (no reference
    forward, no retain batch) without type checks. Class values are the defaults; a strategy with a
    configurable retain term sets them per instance from its :class:`~unlearn.losses.retain.RetainTerm`.

    A strategy with training state of its own (PDU's dual variable) updates it in :meth:`update`,
    which the training module calls after every training batch, and returns it from
    :meth:`state_dict`, which the module saves in every checkpoint and hands back on resume.

    Attributes:
        needs_reference_logps: Reads ``reference.sequence_logps`` on forget (and idk) batches.
        needs_reference_logits: Reads ``reference.logits`` (KL on the retain batch, UNDIAL's teacher on forget).
        needs_reference_hidden_states: Reads ``reference.hidden_states`` at a decoder layer (RMU).
        uses_retain: Reads ``batch["retain"]``.
        uses_idk: Reads ``batch["idk"]``.
    """

    needs_reference_logps: ClassVar[bool] = False
    needs_reference_logits: ClassVar[bool] = False
    needs_reference_hidden_states: ClassVar[bool] = False
    uses_retain: ClassVar[bool] = False
    uses_idk: ClassVar[bool] = False

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None
    ) -> LossOutput:
        """Compute the loss of one batch.

        Args:
            policy: Hugging Face causal LM being unlearned.
            batch: ``{"forget": ..., "retain": ..., "idk": ...}``; each split holds ``input_ids``,
                ``attention_mask``, ``labels`` and ``index``.
            reference: Object following :class:`unlearn.reference.references.Reference`, or ``None`` when the
                strategy needs none.
        """
        raise NotImplementedError

    def trainable_parameters(self, policy: Any) -> list[str] | None:
        """Names of the policy parameters this strategy trains, or ``None`` for every trainable one.

        The training module freezes the others before the optimiser is built (RMU trains a few layers).
        """
        return None

    def update(self, out: LossOutput, epoch: int, mean_over_ranks: Callable[[Tensor], Tensor]) -> None:
        """Advance the strategy's own training state after a training batch (nothing by default).

        Args:
            out: What :meth:`__call__` returned for the batch.
            epoch: The current epoch (0-based).
            mean_over_ranks: Averages a tensor over every process (the identity on one), so that
                state derived from it is the same on every rank. Every rank calls :meth:`update` for
                every batch, so a strategy may call it whenever its decision depends only on values
                shared by all ranks (such as ``epoch``).
        """

    def state_dict(self) -> dict[str, Any]:
        """The strategy's training state, saved with every checkpoint (empty by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (a resumed run)."""

    @classmethod
    def hparam_names(cls) -> list[str]:
        """Keyword arguments the strategy accepts (its hyperparameters)."""
        params = inspect.signature(cls.__init__).parameters.values()
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]

    def hparams(self) -> dict[str, Any]:
        """The strategy's settings, for logging next to the run."""
        return {name: getattr(self, name) for name in self.hparam_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({args})"


def require_reference(reference: Any, strategy: str) -> Any:
    """Fail early, and legibly, when a reference-based strategy is given no reference."""
    if reference is None:
        raise ValueError(f"{strategy} needs a reference model, got reference=None")
    return reference


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is finite and > 0."""
    value = check_number(name, value)
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_non_negative(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is finite and >= 0."""
    value = check_number(name, value)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_int(name: str, value: Any, minimum: int = 0) -> int:
    """Return ``value`` or raise ``ValueError`` unless it is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` or raise ``ValueError`` naming the allowed choices."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_number(name: str, value: Any) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` unless it is a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value
