"""Numerical guards: stop a run at the first NaN or infinity instead of training on garbage.

A non-finite loss, gradient or weight never recovers: AdamW spreads it to every parameter it
touches at the next step. The guards raise a :class:`NonFiniteError` that names the optimiser
step, before the bad update is applied and before any checkpoint holding it is written, so
``<run>/checkpoints/last.ckpt`` always holds the last finite state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from unlearn.errors import NonFiniteError

ADVICE = ("Lower optim.lr, set optim.gradient_clip_val, or use a strategy that does not diverge "
          "(plain gradient ascent has no lower bound).")
MAX_NAMES = 5


class NonFiniteGradientError(NonFiniteError):
    """A gradient became NaN or infinite before the optimiser step."""


class NonFiniteWeightsError(NonFiniteError):
    """A weight became NaN or infinite; it is never written to a checkpoint."""


def _all_finite(tensors: list[torch.Tensor]) -> bool:
    if not tensors:
        return True
    # One reduction per tensor and a single host sync, whatever the number of parameters.
    device = tensors[0].device
    return bool(torch.stack([torch.isfinite(t.detach()).all().to(device) for t in tensors]).all())


def _names(named: Iterable[tuple[str, torch.Tensor]]) -> str:
    bad = [name for name, t in named if not bool(torch.isfinite(t.detach()).all())]
    more = f" and {len(bad) - MAX_NAMES} more" if len(bad) > MAX_NAMES else ""
    return ", ".join(bad[:MAX_NAMES]) + more


def check_gradients(named_parameters: Iterable[tuple[str, torch.nn.Parameter]], step: int, epoch: int,
                    any_rank=lambda bad: bad) -> None:
    """Raise :class:`NonFiniteGradientError` when any gradient holds NaN or infinity.

    Args:
        named_parameters: ``model.named_parameters()``; parameters without a gradient are skipped.
        step: The optimiser step about to be taken (``trainer.global_step``).
        epoch: The current epoch, for the message.
        any_rank: Combines the local verdict across processes, so every rank stops together
            (``lambda bad: strategy.reduce_boolean_decision(bad, all=False)``).
    """
    grads = [(name, p.grad) for name, p in named_parameters if p.grad is not None]
    bad = not _all_finite([g for _, g in grads])
    if any_rank(bad):
        where = f" in {_names(grads)}" if bad else " on another process"
        raise NonFiniteGradientError(
            f"Non-finite gradient at global step {step} (epoch {epoch}){where}; the update was not applied "
            f"and the last checkpoint is unchanged. {ADVICE}")


def check_weights(state_dict: Mapping[str, torch.Tensor], step: int) -> None:
    """Raise :class:`NonFiniteWeightsError` when any floating-point tensor of ``state_dict`` is not finite.

    Called before a checkpoint is written, so a checkpoint can never hold a diverged model.
    """
    tensors = [(k, v) for k, v in state_dict.items() if torch.is_tensor(v) and v.is_floating_point()]
    if not _all_finite([v for _, v in tensors]):
        raise NonFiniteWeightsError(
            f"Non-finite weights after global step {step} in {_names(tensors)}; no checkpoint was written, "
            f"so the last checkpoint holds the last finite weights. {ADVICE}")
