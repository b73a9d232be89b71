"""Answer likelihoods of a model over a list of question/answer pairs, batched.

The summary of every run (forget and retain NLL before and after unlearning) and the
evaluation metrics are built on these per-example numbers.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from unlearn.data.formatting import PromptFormat, TokenizedExample, collate, tokenize_qa
from unlearn.losses.base import forward_logits, sequence_nll, token_counts
from unlearn.models.modes import eval_mode


@torch.no_grad()
def answer_nll(model, tokenizer, questions: list[str], answers: list[str],
               prompt_format: str | PromptFormat = "plain", max_length: int = 512,
               batch_size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example answer NLL (sum over answer tokens + EOS) and answer length, in input order.

    Examples are batched in order of length so that little compute goes to padding.

    Returns:
        ``(nll_sum, n_tokens)``, both ``(N,)``; ``nll_sum / n_tokens`` is ``NLLbar`` (docs/definitions.md,
        "Notation").
    """
    fmt = PromptFormat.of(prompt_format)
    examples = [tokenize_qa(tokenizer, fmt, q, a, max_length) for q, a in zip(questions, answers)]
    return score_examples(model, examples, tokenizer.pad_token_id, batch_size)


@torch.no_grad()
def score_examples(model, examples: list[TokenizedExample], pad_token_id: int, batch_size: int = 32,
                   context=None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`answer_nll` on already tokenised examples: ``(nll_sum, n_tokens)``, in input order.

    The evaluation flattens every (question, candidate answer) pair of a split into one list and
    scores it here, so the perturbed answers of many questions share each forward pass.

    Args:
        context: Optional zero-argument callable returning the context each forward pass runs in
            (Lightning's precision context, so numbers match those of the training steps).
    """
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    device = next(model.parameters()).device
    nll = torch.empty(len(examples))
    counts = torch.empty(len(examples), dtype=torch.long)
    with eval_mode(model):
        for start in range(0, len(order), batch_size):
            ids = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in ids], pad_token_id).items()}
            with context() if context else nullcontext():
                logits = forward_logits(model, batch)
            nll[ids] = sequence_nll(logits, batch["labels"]).cpu()
            counts[ids] = token_counts(batch["labels"]).cpu()
    return nll, counts


def mean_token_nll(model, tokenizer, rows: list[dict], prompt_format: str | PromptFormat = "plain",
                   max_length: int = 512, batch_size: int = 32) -> float:
    """Mean over examples of the per-token answer NLL (``NLLbar``); rows of raw ``text`` score every token."""
    if rows and "text" in rows[0]:  # documents (data.*_format=text), chunked as in training
        from unlearn.data.custom import tokenize_text

        examples = [e for row in rows for e in tokenize_text(tokenizer, row["text"], max_length)]
        nll, counts = score_examples(model, examples, tokenizer.pad_token_id, batch_size)
        return (nll / counts.clamp(min=1)).mean().item()
    nll, counts = answer_nll(model, tokenizer, [r["question"] for r in rows], [r["answer"] for r in rows],
                             prompt_format, max_length, batch_size)
    return (nll / counts.clamp(min=1)).mean().item()
