"""Unlearning losses, one file per strategy, looked up by their config name in :data:`LOSSES`."""

from __future__ import annotations

import difflib
from typing import Any

from unlearn.losses.base import LossOutput, UnlearningLoss, sequence_nll, token_counts, token_mean_nll
from unlearn.losses.dpo import IdkDPO
from unlearn.losses.ga import GradAscent
from unlearn.losses.grad_diff import GradDiff
from unlearn.losses.idk import IdkNLL
from unlearn.losses.kl import GradAscentKL
from unlearn.losses.npo import NPO
from unlearn.losses.npo_kl import NPOKL
from unlearn.losses.npo_rt import NPORT
from unlearn.losses.retain import RetainTerm
from unlearn.losses.simnpo import SimNPO

LOSSES: dict[str, type[UnlearningLoss]] = {
    "ga": GradAscent,
    "grad_diff": GradDiff,
    "kl": GradAscentKL,
    "idk": IdkNLL,
    "dpo": IdkDPO,
    "npo": NPO,
    "npo_rt": NPORT,
    "npo_kl": NPOKL,
    "simnpo": SimNPO,
}


def build_loss(name: str, **hparams: Any) -> UnlearningLoss:
    """Instantiate the strategy registered as ``name`` with flat keyword hyperparameters.

    Example: ``build_loss("npo_kl", beta=0.1, c_npo=1.0, c_kl=1.0, kl_mask="answer")``.

    Args:
        name: A key of :data:`LOSSES`.
        **hparams: The strategy's keyword arguments; omitted ones take their documented defaults.

    Raises:
        ValueError: Unknown name (listing the valid ones and the closest), unknown keyword (naming it
            and the strategy's valid keywords) or invalid value (saying what is wrong).
    """
    if name not in LOSSES:
        close = difflib.get_close_matches(str(name), LOSSES, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown loss {name!r}; valid losses: {sorted(LOSSES)}.{hint}")
    cls = LOSSES[name]
    valid = cls.hparam_names()
    for key in hparams:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown hyperparameter {key!r} for loss {name!r}; valid: {valid}.{hint}")
    return cls(**hparams)


__all__ = [
    "LOSSES",
    "GradAscent",
    "GradAscentKL",
    "GradDiff",
    "IdkDPO",
    "IdkNLL",
    "LossOutput",
    "NPO",
    "NPOKL",
    "NPORT",
    "RetainTerm",
    "SimNPO",
    "UnlearningLoss",
    "build_loss",
    "sequence_nll",
    "token_counts",
    "token_mean_nll",
]
