"""Unlearning losses, one file per strategy, looked up by their config name in :data:`LOSSES`."""

from __future__ import annotations

import difflib
from dataclasses import asdict
from typing import Any

from unlearn.config.loss import LossConfig
from unlearn.errors import ConfigError

from unlearn.losses.base import LossOutput, UnlearningLoss, sequence_nll, token_counts, token_mean_nll
from unlearn.losses.ce_u import CEU
from unlearn.losses.dpo import IdkDPO
from unlearn.losses.ga import GradAscent
from unlearn.losses.grad_diff import GradDiff
from unlearn.losses.idk import IdkNLL
from unlearn.losses.kl import GradAscentKL
from unlearn.losses.npo import NPO
from unlearn.losses.npo_kl import NPOKL
from unlearn.losses.npo_rt import NPORT
from unlearn.losses.pdu import PDU
from unlearn.losses.retain import RetainTerm
from unlearn.losses.rmu import RMU
from unlearn.losses.satimp import SatImp
from unlearn.losses.simnpo import SimNPO
from unlearn.losses.undial import UNDIAL
from unlearn.losses.wga import WGA
from unlearn.names import BETA_LOSSES, LOSS_NAMES

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
    "undial": UNDIAL,
    "wga": WGA,
    "satimp": SatImp,
    "ce_u": CEU,
    "pdu": PDU,
    "rmu": RMU,
}
# unlearn.names holds the names torch-free (for the sweep, the grid and config checks); they must match.
assert tuple(LOSSES) == LOSS_NAMES, f"unlearn.names.LOSS_NAMES {LOSS_NAMES} != LOSSES keys {tuple(LOSSES)}"
assert BETA_LOSSES == tuple(name for name, cls in LOSSES.items() if "beta" in cls.hparam_names()), \
    "unlearn.names.BETA_LOSSES must list the strategies whose hparam_names() include beta, in LOSSES order"


def build_loss(name: str, **hparams: Any) -> UnlearningLoss:
    """Instantiate the strategy registered as ``name`` with flat keyword hyperparameters.

    Example: ``build_loss("npo_kl", beta=0.1, c_npo=1.0, c_kl=1.0, kl_mask="padded", max_length=500)``.

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


def build_loss_from_config(loss: LossConfig, max_length: int | None = None) -> UnlearningLoss:
    """The strategy that ``loss.*`` describes (see ``LossConfig`` for which hyperparameters reach it).

    None takes the strategy's own default; a value left at the typed default goes only to
    strategies that accept it; a changed value the strategy does not accept is an error.

    Args:
        loss: The ``loss`` section.
        max_length: ``data.max_length``, which the composition root passes on to the strategies
            that take it (those with a KL term: ``kl_mask="padded"`` divides by batch × max_length).

    Raises:
        ConfigError: an unknown strategy or hyperparameter, or a value out of range.
    """
    defaults = asdict(LossConfig())
    accepted = set(LOSSES[loss.name].hparam_names()) if loss.name in LOSSES else set()
    params = {k: v for k, v in asdict(loss).items()
              if k != "name" and v is not None and (k in accepted or v != defaults[k])}
    if max_length is not None and "max_length" in accepted:
        params["max_length"] = max_length
    try:
        return build_loss(loss.name, **params)
    except (ValueError, TypeError) as err:
        text = str(err)
        # "beta must be > 0, got 0.0" names its key: say it as the user wrote it.
        named = text.split(" ", 1)[0] in accepted
        raise ConfigError(f"loss.{text} (loss.name={loss.name})" if named else f"loss: {text}") from err


__all__ = [
    "CEU",
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
    "PDU",
    "RMU",
    "RetainTerm",
    "SatImp",
    "SimNPO",
    "UNDIAL",
    "UnlearningLoss",
    "WGA",
    "build_loss",
    "build_loss_from_config",
    "sequence_nll",
    "token_counts",
    "token_mean_nll",
]
