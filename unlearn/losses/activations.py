"""Hidden states at one decoder layer, and the parameters that feed it (RMU's pieces).

Decoder layers are found by name, ``...layers.<i>``, which is how Llama, Mistral, Qwen, Gemma and
Phi name them in Hugging Face, also inside a ``peft`` or FSDP wrapper (``base_model.model.model.
layers.7``). A layer's output is read with a forward hook, as ``forward_with_cache`` does in
open-unlearning's ``src/trainer/unlearn/rmu.py`` and in ``rmu/utils.py`` of
``centerforaisafety/wmdp``: the whole model runs and the hook keeps what the layer returned (its
hidden states, the first element when it returns a tuple).
"""

from __future__ import annotations

import re
from typing import Any

import torch
from torch import Tensor, nn

from unlearn.errors import ConfigError

_LAYER = re.compile(r"(?:.*\.)?layers\.(\d+)")
_LAYER_PARAM = re.compile(r"(?:.*\.)?layers\.(\d+)\.(.+)")
# Parameters outside the decoder layers that reach a layer's output: the token (and position) embeddings
# (GPT-NeoX's `embed_out` is its output head, which does not).
_EMBEDDING = re.compile(r"(?!.*embed_out).*embed.*")


def decoder_layers(model: nn.Module) -> dict[int, nn.Module]:
    """The model's decoder layers by index (modules named ``...layers.<i>``)."""
    found: dict[int, nn.Module] = {}
    for name, module in model.named_modules():
        match = _LAYER.fullmatch(name)
        if match:
            index = int(match.group(1))
            if index in found and found[index] is not module:
                raise ConfigError(f"{type(model).__name__} has more than one module named like 'layers.{index}'; "
                                  "RMU cannot tell which decoder layer to read.")
            found[index] = module
    return found


def decoder_layer(model: nn.Module, index: int) -> nn.Module:
    """The decoder layer ``index`` of ``model``.

    Raises:
        ConfigError: the model has no such layer (``loss.layer`` out of range, or no ``layers.<i>`` modules).
    """
    layers = decoder_layers(model)
    if index not in layers:
        have = f"decoder layers 0-{max(layers)}" if layers else "no modules named 'layers.<i>'"
        raise ConfigError(f"loss.layer={index}: {type(model).__name__} has {have}; choose a layer it has "
                          "(RMU's papers use layer 7 of a 32-layer 7B model).")
    return layers[index]


def layer_output(model: Any, inputs: dict[str, Tensor], index: int) -> Tensor:
    """Hidden states ``(B, T, D)`` that decoder layer ``index`` outputs when ``model`` runs on ``inputs``.

    Gradients flow when the caller's grad mode allows them (the policy); wrap in ``torch.no_grad()``
    for a reference.
    """
    captured: list[Tensor] = []

    def keep(_module, _args, output):
        captured.append(output[0] if isinstance(output, (tuple, list)) else output)

    handle = decoder_layer(model, index).register_forward_hook(keep)
    try:
        model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    finally:
        handle.remove()
    if not captured:
        raise RuntimeError(f"decoder layer {index} did not run in the forward pass")
    return captured[0]


def steering_vector(dim: int, coeff: float, seed: int) -> Tensor:
    """RMU's fixed random direction ``c · u``: ``u`` uniform on ``[0, 1)^D``, normalised to length 1.

    wmdp's ``run_rmu`` draws ``torch.rand(1, 1, D)`` from the global generator seeded by the run;
    here a generator of its own, seeded by ``seed`` on the CPU, so every rank and every resumed run
    draws the same vector without storing it.

    Returns:
        ``(D,)`` float32 tensor of norm ``coeff``.
    """
    u = torch.rand(dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    return u / u.norm() * coeff


def _module_path(relative: str) -> str:
    """A parameter's name as the plain model spells it: ``peft`` adapters stand for their module's weight.

    ``mlp.down_proj.lora_A.default.weight`` -> ``mlp.down_proj.weight``;
    ``mlp.down_proj.base_layer.weight`` -> ``mlp.down_proj.weight``.
    """
    if ".lora_" in relative:
        return relative.split(".lora_")[0] + ".weight"
    return relative.replace(".base_layer.", ".")


def select_parameters(policy: nn.Module, layer: int, layers: list[int] | None, params: str | list[str]) -> list[str]:
    """Names of the trainable parameters of ``policy`` that RMU updates.

    Args:
        policy: The policy; parameters that are already frozen (a LoRA model's base weights) stay out.
        layer: The steered layer; nothing after it can change its output.
        layers: Decoder layers whose ``params`` train; each ``<= layer``.
        params: Parameter names inside a decoder layer (``mlp.down_proj.weight``); under LoRA a name
            stands for the adapters of its module. ``"all"``: every parameter that reaches the steered
            layer's output, i.e. the embeddings and layers ``0..layer`` (open-unlearning's TOFU
            setting, ``trainable_params_regex: [.*]``, less the parameters that get no gradient).

    Raises:
        ConfigError: the layer does not exist, or a named parameter matches nothing.
    """
    count = len(decoder_layers(policy))
    decoder_layer(policy, layer)  # raises when out of range
    chosen, matched = [], set()
    for name, param in policy.named_parameters():
        if not param.requires_grad:
            continue
        match = _LAYER_PARAM.fullmatch(name)
        if params == "all":
            if (match and int(match.group(1)) <= layer) or (not match and _EMBEDDING.fullmatch(name)):
                chosen.append(name)
            continue
        if match and int(match.group(1)) in layers and _module_path(match.group(2)) in params:
            chosen.append(name)
            matched.add(_module_path(match.group(2)))
    missing = [] if params == "all" else [p for p in params if p not in matched]
    if missing or not chosen:
        lora = any(".lora_" in name for name, _ in policy.named_parameters())
        hint = (" Under LoRA only adapters train: add the module to model.lora.target_modules." if lora else
                f" A decoder layer's parameters are: {_layer_parameter_names(policy)}.")
        raise ConfigError(f"loss.trainable_params={missing or params} selects no trainable parameter of decoder "
                          f"layers {layers} (the model has {count}).{hint}")
    return chosen


def _layer_parameter_names(policy: nn.Module) -> list[str]:
    names = []
    for name, _ in policy.named_parameters():
        match = _LAYER_PARAM.fullmatch(name)
        if match and match.group(1) == "0":
            names.append(_module_path(match.group(2)))
    return sorted(set(names))
