"""Per-token statistics of tokenised examples, batched: what membership inference and memorisation read.

One forward pass per length-sorted batch (as :func:`unlearn.models.scoring.score_examples`) gives,
at every scored position of every example (labels other than ``-100``, after the causal shift):

- ``logprob``: ``log p(x_t | x_<t)`` of the true token (LOSS, ZLib, Min-K%, reference attacks);
- ``mu`` and ``sigma``: the mean and standard deviation of ``log p(z | x_<t)`` over the vocabulary
  under the model's own next-token distribution, ``mu = Σ_z p(z) log p(z)`` and
  ``sigma² = Σ_z p(z) (log p(z) − mu)²`` (Min-K%++; open-unlearning ``src/evals/metrics/mia/
  min_k_plus_plus.py``, ``MinKPlusPlusAttack.compute_score``);
- ``greedy_match``: whether the argmax next token is the true one (exact memorisation, extraction
  strength; open-unlearning ``src/evals/metrics/memorization.py``).

Everything is computed in float32 whatever the model's dtype: a bfloat16 log-softmax over a large
vocabulary loses the differences these attacks are made of. Which positions each attack then
reads (open-unlearning drops the last scored token for some) is :mod:`unlearn.evaluation.mia`'s
business; here every scored position is kept.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from unlearn.data.formatting import IGNORE_INDEX, TokenizedExample, collate
from unlearn.losses.base import forward_logits
from unlearn.models.modes import eval_mode

# Scored positions whose vocabulary statistics are computed at once: bounds the float32 temporaries
# (log-softmax, probabilities) to about 2**27 numbers (0.5 GB each) whatever the batch and vocabulary.
_CHUNK_ELEMENTS = 2 ** 27

FIELDS = ("logprob", "mu", "sigma", "greedy_match")


@dataclass
class TokenStats:
    """Per-example arrays over each example's scored positions, in input order.

    Attributes:
        logprob: float32 ``log p`` of each true token.
        mu, sigma: float32 mean and standard deviation of ``log p`` over the vocabulary, or None when
            not computed (``vocab_stats=False``).
        greedy_match: bool, argmax next token == true token.
    """

    logprob: list[np.ndarray]
    greedy_match: list[np.ndarray]
    mu: list[np.ndarray] | None = None
    sigma: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.logprob)

    def select(self, indices) -> TokenStats:
        """The statistics of the examples at ``indices``, in that order."""
        pick = (lambda values: None if values is None else [values[i] for i in indices])
        return TokenStats(pick(self.logprob), pick(self.greedy_match), pick(self.mu), pick(self.sigma))

    @classmethod
    def concat(cls, parts: list[TokenStats]) -> TokenStats:
        """The examples of ``parts`` one after the other."""
        def join(name):
            values = [getattr(p, name) for p in parts]
            return None if any(v is None for v in values) else [a for v in values for a in v]
        return cls(join("logprob"), join("greedy_match"), join("mu"), join("sigma"))


def _position_stats(logits: torch.Tensor, targets: torch.Tensor, vocab_stats: bool) -> dict[str, torch.Tensor]:
    """Statistics of ``(n, V)`` logits at ``n`` scored positions with true tokens ``targets``, in float32."""
    out = {name: [] for name in FIELDS}
    rows = max(1, _CHUNK_ELEMENTS // logits.size(-1))
    for start in range(0, logits.size(0), rows):
        chunk = logits[start:start + rows].float()
        log_p = F.log_softmax(chunk, dim=-1)
        target = targets[start:start + rows]
        out["logprob"].append(log_p.gather(-1, target[:, None]).squeeze(-1))
        out["greedy_match"].append(chunk.argmax(dim=-1) == target)
        if vocab_stats:
            p = log_p.exp()
            mu = (p * log_p).sum(-1)
            # Σ p (log p − μ)², the same number as open-unlearning's Σ p log² p − μ² without its cancellation
            # (log² p is ~30 where the variance is ~0.01 for a flat distribution).
            variance = (p * (log_p - mu[:, None]).square()).sum(-1)
            out["mu"].append(mu)
            out["sigma"].append(variance.sqrt())
    empty = {"greedy_match": torch.empty(0, dtype=torch.bool, device=logits.device)}
    return {name: torch.cat(values) if values else empty.get(name, torch.empty(0, device=logits.device))
            for name, values in out.items()}


@torch.no_grad()
def token_stats(model, examples: list[TokenizedExample], pad_token_id: int, batch_size: int = 32,
                context=None, vocab_stats: bool = True) -> TokenStats:
    """Per-token statistics of every example, batched by length (see the module docstring).

    Args:
        model: A causal LM.
        examples: Tokenised examples; ``labels`` are ``-100`` where a position is not scored.
        pad_token_id: Right padding of a batch (attention-masked).
        batch_size: Sequences per forward pass.
        context: Optional zero-argument callable returning the context each forward pass runs in
            (Lightning's precision context), as in :func:`unlearn.models.scoring.score_examples`.
        vocab_stats: Also compute Min-K%++'s ``mu`` and ``sigma`` (three extra passes over the
            vocabulary at each scored position).

    Returns:
        :class:`TokenStats` with one array per example, in input order; an example with no scored
        position gets empty arrays.
    """
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    device = next(model.parameters()).device
    per_example: dict[str, list] = {name: [None] * len(examples) for name in FIELDS}
    with eval_mode(model):
        for start in range(0, len(order), batch_size):
            ids = order[start:start + batch_size]
            batch = {k: v.to(device) for k, v in collate([examples[i] for i in ids], pad_token_id).items()}
            with context() if context else nullcontext():
                logits = forward_logits(model, batch)
            labels = batch["labels"][:, 1:]
            scored = labels != IGNORE_INDEX  # row-major: each row's positions stay in order
            stats = _position_stats(logits[:, :-1][scored], labels[scored], vocab_stats)
            counts = scored.sum(dim=1).tolist()
            for name, values in stats.items():
                if name in ("mu", "sigma") and not vocab_stats:
                    continue
                for i, part in zip(ids, torch.split(values.cpu(), counts)):
                    per_example[name][i] = part.numpy()
    return TokenStats(per_example["logprob"], per_example["greedy_match"],
                      per_example["mu"] if vocab_stats else None, per_example["sigma"] if vocab_stats else None)
