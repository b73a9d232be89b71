"""AdamW with linear warm-up then linear decay to zero: the schedule of the NPO and TOFU code."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters, with biases and norm weights exempt from weight decay (Hugging Face Trainer's rule)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_linear_decay(total_steps: int, warmup_steps: int):
    """Learning-rate multiplier: 0 -> 1 over ``warmup_steps``, then 1 -> 0 at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return factor


def configure_adamw(module, model: torch.nn.Module, lr: float, weight_decay: float, warmup_epochs: float) -> dict:
    """Lightning's ``configure_optimizers`` answer for ``model`` inside ``module``.

    Warm-up is given in epochs (the NPO code warms up for one epoch) and converted with the
    trainer's own count of optimiser steps, so gradient accumulation and devices are accounted for.
    """
    trainer = module.trainer
    total = max(1, int(trainer.estimated_stepping_batches))
    warmup = round(warmup_epochs * total / max(1, trainer.max_epochs))
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    scheduler = LambdaLR(optimizer, warmup_linear_decay(total, warmup))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
