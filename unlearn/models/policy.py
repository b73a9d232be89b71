"""The policy a run trains: the target model, with LoRA adapters when asked for."""

from __future__ import annotations

from unlearn.config.schema import LoraConfig
from unlearn.models.loading import load_model
from unlearn.models.lora import apply_lora


def build_policy(path: str, dtype: str = "float32", trust_remote_code: bool = False,
                 attn_implementation: str | None = None, lora: LoraConfig | None = None):
    """The starting policy: the model at ``path`` (on the CPU), with LoRA adapters when ``lora.enabled``."""
    policy = load_model(path, dtype, trust_remote_code, attn_implementation)
    if lora is not None and lora.enabled:
        policy = apply_lora(policy, lora.r, lora.alpha, lora.dropout, lora.target_modules)
    return policy


def freeze_all_but(policy, names) -> None:
    """Leave only the parameters named in ``names`` trainable (a strategy that updates a few layers, RMU).

    Called before the optimiser is built, which takes trainable parameters only (``training.optim``).

    Raises:
        ValueError: a name that is not a parameter of ``policy``.
    """
    names = set(names)
    unknown = names - {name for name, _ in policy.named_parameters()}
    if unknown:
        raise ValueError(f"not parameters of the policy: {sorted(unknown)}")
    for name, param in policy.named_parameters():
        if name not in names:
            param.requires_grad_(False)
