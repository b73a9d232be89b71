"""Batched greedy generation: what the model answers, for ROUGE-L and for the logged samples."""

from __future__ import annotations

import torch

from unlearn.data.formatting import collate_prompts
from unlearn.models.modes import eval_mode


@torch.no_grad()
def greedy_generate(model, tokenizer, prompts: list[list[int]], max_new_tokens: int,
                    batch_size: int = 32) -> list[str]:
    """Greedy continuations of tokenised prompts, decoded without special tokens, in input order.

    Prompts are batched in order of length with left padding, and ``generate`` reuses its KV cache,
    so each new token costs one forward pass per batch rather than per question.

    Args:
        prompts: Token ids of each prompt (see :func:`unlearn.data.formatting.prompt_ids`).
        max_new_tokens: Generation length cap (TOFU's reference: 200).
    """
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    device = next(model.parameters()).device
    kwargs = {"do_sample": False, "max_new_tokens": max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
    if getattr(model.generation_config, "eos_token_id", None) is None:
        kwargs["eos_token_id"] = tokenizer.eos_token_id  # chat models keep their own list of stop tokens
    texts: list[str] = [""] * len(prompts)
    with eval_mode(model):
        for start in range(0, len(order), batch_size):
            ids = order[start:start + batch_size]
            batch = {k: v.to(device)
                     for k, v in collate_prompts([prompts[i] for i in ids], tokenizer.pad_token_id).items()}
            # Sampling settings a checkpoint ships (temperature, top_p) mean nothing for greedy decoding.
            out = model.generate(**batch, **kwargs, temperature=None, top_p=None, top_k=None)
            decoded = tokenizer.batch_decode(out[:, batch["input_ids"].size(1):], skip_special_tokens=True)
            for i, text in zip(ids, decoded):
                texts[i] = text.strip()
    return texts
