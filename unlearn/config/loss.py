"""The ``loss`` section of the run configuration (re-exported by ``unlearn.config.schema``).

Each strategy checks its own values when it is built (``unlearn.losses.build_loss_from_config``,
called once by ``unlearn.config.validation``); the comments say which strategies read a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LossConfig:
    """Loss strategy and its hyperparameters; None means "the strategy's own default".

    A value left at the default below goes only to strategies that take it; a value the user
    changed for a strategy that does not use it is an error, so that a KL coefficient given to
    ``npo_rt`` does not pass silently. ``beta`` and ``c_rt`` default to the built-in run's tuned
    values (docs/builtin.md): on the tiny model the paper's β = 0.1 and c_rt = 1 let the summed
    forget term overwhelm the token-mean retain term. They reach every strategy that takes them
    (UNDIAL's and WGA's β, PDU's starting dual variable ``c_rt`` too). The TOFU experiment configs
    and ``configs/loss/*.yaml`` set the papers' values explicitly.
    """

    name: str = "npo_rt"
    beta: float | None = 0.5
    gamma: float | None = None
    c_forget: float | None = None
    c_npo: float | None = None
    c_rt: float | None = 5.0
    c_kl: float | None = None
    kl_mask: str | None = None  # answer | all | padded (docs/definitions.md, "KL masks")
    retain: str | None = None  # none | nll | kl (strategies with an optional retain term)
    idk_mean: str | None = None  # joint | separate (idk: one token mean over IDK + retain, or two)
    # satimp: powers of the saturation weight p and the importance weight 1 - p of each forget token.
    beta1: float | None = None
    beta2: float | None = None
    ignore_first_n_answer_tokens: int | None = None  # ce_u: answer tokens left unscored per row (1)
    # pdu: the retain-loss bound ε, the dual ascent step and the epochs before the dual variable moves.
    retain_loss_eps: float | None = None
    dual_step_size: float | None = None
    dual_warmup_epochs: float | None = None
    # rmu: the steered decoder layer, the layers and the parameters inside each that train ("all": every
    # parameter up to `layer`), the steering coefficient c, the retain weight α, the seed of the direction u.
    layer: int | None = None
    trainable_layers: list[int] | None = None
    trainable_params: Any = None  # "all" or a list such as [mlp.down_proj.weight]
    steering_coeff: float | None = None
    alpha: float | None = None
    steering_seed: int | None = None
