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
