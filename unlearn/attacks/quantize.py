"""Group-wise round-to-nearest (RTN) weight quantisation, simulated in torch: the quantisation attack.

Zhang et al. 2024 (arXiv 2410.16454, code ``zzwjames/FailureLLMUnlearning``, ``utils.py``
``load_model``) load an unlearned model with bitsandbytes in 4 or 8 bits and find that much of the
forgotten knowledge comes back: unlearning with a small learning rate moves the weights less than
one quantisation step, so rounding snaps them back towards the target model's weights.

This module rounds weights the way weight-only post-training quantisers do and writes the
dequantised values back ("fake" or "pseudo" quantisation), so the model keeps its dtype and runs
anywhere, CPU included; the numbers it computes are those a real low-bit kernel would compute
from the same integers and scales.

- Groups: each row of a Linear weight ``(out_features, in_features)`` is cut into groups of
  ``group_size`` consecutive input weights with one scale (and zero point) per group, as
  ``mit-han-lab/llm-awq`` ``awq/quantize/quantizer.py`` ``pseudo_quantize_tensor`` does with its
  default ``q_group_size=128``. ``group_size=0`` gives one group per row (per output channel).
- Asymmetric (the default, AWQ's and GPTQ's): ``scale = (max - min) / (2^b - 1)``, zero point
  ``z = round(-min / scale)``, ``q = clamp(round(w / scale) + z, 0, 2^b - 1)``, ``w' = (q - z) * scale``.
  As in ``IST-DASLab/gptq`` ``quant.py`` ``Quantizer.find_params``, the range always includes 0
  (``min <= 0 <= max``), so zero is exact and the zero point lies in ``[0, 2^b - 1]``; AWQ's
  ``pseudo_quantize_tensor`` leaves the range as found, which lets a group whose weights all share
  one sign clamp far from its values (an error above ``scale / 2``).
- Symmetric: ``scale = max|w| / (2^(b-1) - 1)``, ``q = clamp(round(w / scale), -2^(b-1), 2^(b-1) - 1)``
  (AWQ's ``zero_point=False`` branch).

Either way every weight moves by at most ``scale / 2`` of its group (:func:`quantize_tensor`), up to
the rounding of the weight's own dtype.

Which layers: every ``nn.Linear`` except the output head, and never the input embeddings (which are
``nn.Embedding``, not ``nn.Linear``). Weight-only quantisers keep both in full precision: AWQ
quantises only the linear layers inside the decoder blocks (``pseudo_quantize_model_weight`` over
``get_blocks``), and bitsandbytes through transformers, which the paper used, leaves the output
head unconverted (``get_keys_to_not_convert``). The head and embeddings are a small share of the
weights, the most sensitive to rounding, and often one tensor (tied): rounding the head would round
the embeddings too. ``include_head=True`` rounds the head as well.

Real low-bit kernels (bitsandbytes' NF4/FP4 with its 64-weight blocks, GPTQ, AWQ) are not wired
in: bitsandbytes needs a CUDA build of its own and loads models through ``from_pretrained``, a
path this project's evaluation does not use. RTN with group size 128 is the common baseline those
methods are measured against, and it needs nothing but torch.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)

MIN_BITS, MAX_BITS = 2, 8


def _levels(bits: int, symmetric: bool) -> tuple[int, int]:
    """The smallest and largest integer a ``bits``-bit code takes."""
    if not MIN_BITS <= bits <= MAX_BITS:
        raise ValueError(f"bits must be between {MIN_BITS} and {MAX_BITS}, got {bits}")
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if symmetric else (0, 2 ** bits - 1)


def _grouped(w: torch.Tensor, group_size: int) -> tuple[torch.Tensor, int]:
    """``w`` as ``(groups, group_size)`` rows, its last dimension zero-padded to a multiple of the group.

    Padding with zeros changes no group's scale: every group's range includes 0 already.
    """
    width = w.shape[-1]
    size = width if group_size <= 0 else group_size
    pad = (-width) % size
    rows = w.reshape(-1, width)
    if pad:
        rows = torch.nn.functional.pad(rows, (0, pad))
    return rows.reshape(-1, size), pad


def quantize_tensor(w: torch.Tensor, bits: int, group_size: int = 128, symmetric: bool = False,
                    return_scale: bool = False):
    """Round ``w`` to ``bits``-bit integers per group of its last dimension and back (pure).

    Args:
        w: A weight tensor; groups run along its last dimension (a Linear's input features).
        bits: Code width, 2 to 8.
        group_size: Consecutive weights that share a scale; ``0`` means the whole last dimension.
        symmetric: Symmetric codes around 0 instead of a zero point.
        return_scale: Also return each element's group scale (the shape of ``w``).

    Returns:
        The dequantised tensor, in ``w``'s dtype and shape; with ``return_scale``, also the scales.
        Every element satisfies ``|w' - w| <= scale / 2`` (computed in float32).
    """
    low, high = _levels(bits, symmetric)
    groups, pad = _grouped(w.detach().float(), group_size)
    if symmetric:
        scale = groups.abs().amax(dim=1, keepdim=True) / high
        zero = torch.zeros_like(scale)
    else:
        lo = groups.amin(dim=1, keepdim=True).clamp(max=0)
        hi = groups.amax(dim=1, keepdim=True).clamp(min=0)
        scale = (hi - lo) / (high - low)
        zero = None
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero group stays exactly zero
    if zero is None:
        zero = torch.round(-lo / scale).clamp(low, high)
    codes = torch.clamp(torch.round(groups / scale) + zero, low, high)
    out, scales = (codes - zero) * scale, scale.expand_as(groups)

    def back(t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1, w.shape[-1] + pad)[:, :w.shape[-1]]
        return t.reshape(w.shape)

    result = back(out).to(w.dtype)
    return (result, back(scales)) if return_scale else result


def quantizable_linears(model: nn.Module, include_head: bool = False) -> dict[str, nn.Linear]:
    """The ``nn.Linear`` layers :func:`quantize_model_` rounds, by name (the output head left out by default)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {name: module for name, module in model.named_modules()
            if isinstance(module, nn.Linear) and (include_head or module is not head)}


@torch.no_grad()
def quantize_model_(model: nn.Module, bits: int, group_size: int = 128, symmetric: bool = False,
                    include_head: bool = False) -> list[str]:
    """Fake-quantise the weights of ``model``'s Linear layers in place (biases and norms stay as they are).

    Args:
        model: A causal LM (or any module); its other parameters are untouched.
        bits, group_size, symmetric: As in :func:`quantize_tensor`.
        include_head: Round the output head too (tied to the input embeddings in many models).

    Returns:
        The names of the layers rounded.

    Raises:
        ValueError: ``bits`` out of range, or no Linear layer to round.
    """
    layers = quantizable_linears(model, include_head)
    if not layers:
        raise ValueError("the model has no Linear layer to quantise (besides the output head)")
    for module in layers.values():
        module.weight.copy_(quantize_tensor(module.weight, bits, group_size, symmetric))
    log.info("Rounded %d Linear layers to %d bits (group size %s, %s)", len(layers), bits,
             group_size or "row", "symmetric" if symmetric else "asymmetric")
    return list(layers)
