"""LoRA adapters on the policy (via ``peft``), and turning them back into a plain model for saving.

Under LoRA the reference needs no second copy of the weights: it is the same network with its
adapters switched off (``reference.mode=adapter``, chosen by ``auto``), because the base weights
never change. Only the adapters train, so the optimiser holds state for them alone.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def apply_lora(policy, r: int, alpha: int, dropout: float, target_modules: list[str] | str):
    """Wrap ``policy`` with fresh LoRA adapters; the base weights are frozen.

    Adapters start with ``B = 0``, so the wrapped model computes exactly what the base model does
    until the first update.
    """
    from peft import LoraConfig, get_peft_model

    targets = target_modules if isinstance(target_modules, str) else list(target_modules)
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM")
    try:
        model = get_peft_model(policy, config)
    except ValueError as err:  # peft names the modules it could not find
        raise ValueError(f"model.lora.target_modules={targets} do not fit this model ({err}); "
                         "use 'all-linear' or the names of its linear layers.") from err
    trainable, total = model.get_nb_trainable_parameters()
    log.info("LoRA: %d trainable of %d parameters (%.2f%%)", trainable, total, 100 * trainable / total)
    return model


def is_lora(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def model_for_saving(policy, merge: bool):
    """What to ``save_pretrained``: the merged plain model, or the policy (adapters only under LoRA)."""
    if not is_lora(policy) or not merge:
        return policy
    # merge_and_unload rewrites the base layers in place; merge into a copy so the policy stays usable.
    import copy

    return copy.deepcopy(policy).merge_and_unload()
