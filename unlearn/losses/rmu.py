"""RMU: Representation Misdirection for Unlearning.

Li et al., "The WMDP Benchmark: Measuring and Reducing Malicious Use With Unlearning" (arXiv
2403.03218); code ``centerforaisafety/wmdp``, ``rmu/unlearn.py`` (``run_rmu``) with
``forward_with_cache`` and ``get_params`` in ``rmu/utils.py``; on TOFU as open-unlearning runs it,
``src/trainer/unlearn/rmu.py`` (``RMU.compute_loss``, ``compute_activation_loss``,
``compute_retain_loss`` with ``retain_loss_type: EMBED_DIFF``). With ``h_θ(x)`` the output of
decoder layer ``ℓ`` (``layer``) at each position:

    L(θ) = c_forget · MSE_mask(h_θ(forget), c · u) + α · MSE_mask(h_θ(retain), h_ref(retain))

``u`` is a fixed random direction, uniform on ``[0, 1)^D`` and normalised, scaled by the steering
coefficient ``c``: forget text is pushed to a meaningless large activation, retain text kept where
the frozen model had it. ``MSE_mask`` is open-unlearning's ``compute_activation_loss``: squared
error averaged over the hidden dimension, summed over the positions whose label is not ``-100``
(the answer tokens and EOS, unshifted: a hidden state stands for its own token), divided by their
number per row, averaged over rows:

    MSE_mask(h, t) = mean_i [ Σ_{s: label_is ≠ −100} mean_d (h_isd − t_isd)² / #{s: label_is ≠ −100} ]

Only the chosen parameters train (the others are frozen by the training module before the optimiser
is built; :meth:`RMU.trainable_parameters`): by default wmdp's ``layer_ids 5,6,7`` ×
``param_ids 6`` (``mlp.down_proj.weight`` of each layer, ``get_params``) with ``layer_id 7``.

Departures, all deliberate:

* wmdp's ``run_rmu`` takes ``F.mse_loss`` over every position of raw-text batches (padding
  included); open-unlearning, whose question–answer batches this project shares, masks to the label
  positions. This follows open-unlearning.
* A row without label tokens divides by 0 there (NaN); here it contributes 0.
* The squared error is taken in float32 (the reference: the model's dtype).
* ``u`` comes from a generator of its own seeded by ``steering_seed`` (wmdp: the global generator
  after ``torch.manual_seed(args.seed)``, seed 42), so every rank and a resumed run agree.

Defaults are wmdp's code (``steering_coeff 20``, ``alpha 100``, layer 7, layers 5-7, ``down_proj``);
open-unlearning's TOFU settings (``steering_coeff 2``, ``alpha 1``, every parameter up to layer 7)
are in ``configs/loss/rmu.yaml``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import Tensor

from unlearn.data.formatting import IGNORE_INDEX
from unlearn.losses.activations import layer_output, select_parameters, steering_vector
from unlearn.losses.base import LossOutput, UnlearningLoss, check_int, check_non_negative, check_positive, require_reference

if TYPE_CHECKING:
    from unlearn.reference.references import Reference


def masked_activation_mse(hidden: Tensor, target: Tensor, labels: Tensor) -> Tensor:
    """open-unlearning's ``compute_activation_loss``, in float32 (see the module docstring).

    Args:
        hidden: ``(B, T, D)`` hidden states.
        target: ``(B, T, D)`` or broadcastable (the steering vector ``(D,)``).
        labels: ``(B, T)`` labels; positions with ``-100`` are left out.

    Returns:
        Scalar float32.
    """
    mask = (labels != IGNORE_INDEX).to(hidden.device).float()
    squared = (hidden.float() - target.to(hidden.device).float()) ** 2
    per_row = (squared.mean(dim=-1) * mask).sum(dim=-1)
    return (per_row / mask.sum(dim=-1).clamp(min=1)).mean()


class RMU(UnlearningLoss):
    """Steer forget-text hidden states at ``layer`` to ``c · u``; keep retain-text ones at the reference's.

    Args:
        layer: Decoder layer whose output is steered (wmdp's ``layer_id``).
        trainable_layers: Decoder layers whose ``trainable_params`` train, each ``<= layer``; ``None``
            is ``[layer - 2, layer - 1, layer]`` (wmdp's ``layer_ids 5,6,7`` for layer 7).
        trainable_params: Parameter names inside a decoder layer (wmdp's ``param_ids 6`` is
            ``mlp.down_proj.weight``), or ``"all"``: every parameter that reaches the layer's output
            (open-unlearning's TOFU setting). Under LoRA a name stands for its module's adapters.
        steering_coeff: ``c > 0``, the length of the steering vector.
        alpha: ``α >= 0``, weight of the retain term.
        c_forget: Weight of the forget term (open-unlearning's ``gamma``).
        steering_seed: Seed of the random direction ``u``.
    """

    needs_reference_hidden_states = True
    uses_retain = True

    def __init__(
        self,
        *,
        layer: int = 7,
        trainable_layers: list[int] | None = None,
        trainable_params: str | list[str] = ("mlp.down_proj.weight",),
        steering_coeff: float = 20.0,
        alpha: float = 100.0,
        c_forget: float = 1.0,
        steering_seed: int = 42,
    ) -> None:
        self.layer = check_int("layer", layer)
        if trainable_params == "all":
            if trainable_layers is not None:
                raise ValueError("trainable_layers must be null with trainable_params 'all' (every parameter up to "
                                 "the steered layer trains); give parameter names to train only some layers")
            self.trainable_params: str | list[str] = "all"
        else:
            if isinstance(trainable_params, str) or not trainable_params or \
                    not all(isinstance(p, str) and p for p in trainable_params):
                raise ValueError("trainable_params must be 'all' or a non-empty list of parameter names inside a "
                                 f"decoder layer, such as [mlp.down_proj.weight], got {trainable_params!r}")
            self.trainable_params = list(trainable_params)
        default_layers = list(range(max(0, self.layer - 2), self.layer + 1))
        chosen = default_layers if trainable_layers is None else trainable_layers
        if isinstance(chosen, (str, bytes)) or not chosen:
            raise ValueError(f"trainable_layers must be a non-empty list of layer indices, got {trainable_layers!r}")
        for index in chosen:
            if check_int("trainable_layers", index) > self.layer:
                raise ValueError(f"trainable_layers must all be <= layer={self.layer}: layer {index} comes after the "
                                 "steered layer, so the loss gives it no gradient")
        self.trainable_layers = None if trainable_layers is None else list(trainable_layers)
        self._layers = list(chosen)
        self.steering_coeff = check_positive("steering_coeff", steering_coeff)
        self.alpha = check_non_negative("alpha", alpha)
        self.c_forget = check_non_negative("c_forget", c_forget)
        self.steering_seed = check_int("steering_seed", steering_seed)

    def trainable_parameters(self, policy: Any) -> list[str]:
        """The chosen parameters of ``policy`` (see :func:`unlearn.losses.activations.select_parameters`)."""
        return select_parameters(policy, self.layer, self._layers, self.trainable_params)

    def control_vector(self, dim: int) -> Tensor:
        """``c · u`` for hidden size ``dim`` (the same on every call, rank and resume)."""
        return steering_vector(dim, self.steering_coeff, self.steering_seed)

    def __call__(
        self, policy: Any, batch: dict[str, dict[str, Tensor]], reference: Reference | None
    ) -> LossOutput:
        reference = require_reference(reference, "rmu")
        forget, retain = batch["forget"], batch.get("retain")
        if retain is None:
            raise ValueError("rmu needs batch['retain']")
        forget_hidden = layer_output(policy, forget, self.layer)
        forget_loss = masked_activation_mse(forget_hidden, self.control_vector(forget_hidden.size(-1)), forget["labels"])
        retain_hidden = layer_output(policy, retain, self.layer)
        ref_hidden = reference.hidden_states(retain, self.layer)
        retain_loss = masked_activation_mse(retain_hidden, ref_hidden, retain["labels"])
        extras = {"forget_mse": forget_loss.detach(), "retain_mse": retain_loss.detach(),
                  "forget_hidden_norm": forget_hidden.detach().float().norm(dim=-1).mean()}
        return LossOutput.combine(self.c_forget * forget_loss, self.alpha * retain_loss, extras)
