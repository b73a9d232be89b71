"""Unlearning losses against values worked out by hand, plus a few training steps per strategy.

Most tests use a lookup-table "policy" over a vocabulary of 3: the logits at a position depend only
on the token there, so every NLL below can be read off the table.

    token 0 -> logits (0, 0, 0)      -> probabilities (1/3, 1/3, 1/3)
    token 1 -> logits (ln2, 0, 0)    -> probabilities (1/2, 1/4, 1/4)
    token 2 -> logits (0, 0, ln2)    -> probabilities (1/4, 1/4, 1/2)

Position t predicts labels[t+1] (the causal shift).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
from torch import nn

from unlearn.data.formatting import IGNORE_INDEX
from unlearn.losses import LossOutput, build_loss, sequence_nll, token_counts, token_mean_nll
from unlearn.losses.retain import RetainTerm
from unlearn.models.loading import build_tiny_llama
from unlearn.reference.references import ModelReference, Reference

LN2, LN3 = math.log(2), math.log(3)
TABLE = torch.tensor([[0.0, 0.0, 0.0], [LN2, 0.0, 0.0], [0.0, 0.0, LN2]])
# KL(uniform ‖ (1/2, 1/4, 1/4)) = 1/3·[ln(2/3) + 2·ln(4/3)] = 1/3·ln(32/27); the same for token 2's row.
K = math.log(32 / 27) / 3


class TablePolicy(nn.Module):
    """Causal LM stand-in whose logits at each position are ``table[token]``."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone())

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.table[input_ids])


class FixedReference:
    """Reference with hand-set sequence log-probs per (split, index) and uniform logits."""

    def __init__(self, logps: dict[str, list[float]]) -> None:
        self.logps = {split: torch.tensor(values) for split, values in logps.items()}

    def sequence_logps(self, inputs: dict, split: str) -> torch.Tensor:
        return self.logps[split][inputs["index"]]

    def logits(self, inputs: dict) -> torch.Tensor:
        return torch.zeros(*inputs["input_ids"].shape, 3)


def split(input_ids: list[list[int]], labels: list[list[int]]) -> dict[str, torch.Tensor]:
    ids = torch.tensor(input_ids)
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "labels": torch.tensor(labels),
        "index": torch.arange(len(ids)),
    }


# Sequence NLLs [ln3 + ln4, ln2] = [ln12, ln2]; 3 label tokens; token mean ln24 / 3.
FORGET = split([[0, 1, 2], [1, 2, 0]], [[-100, 1, 2], [-100, 0, -100]])
# Token NLLs ln2, ln3 (row 0) and ln4 (row 1): token mean ln24 / 3.
RETAIN = split([[1, 0, 2], [0, 1, 0]], [[-100, 0, 1], [-100, -100, 2]])
# All positions uniform: sequence NLLs [2·ln3, ln3]; token mean ln3.
IDK = split([[0, 0, 0], [0, 0, 0]], [[-100, 1, 2], [-100, 0, -100]])
BATCH = {"forget": FORGET, "retain": RETAIN, "idk": IDK}
# log π_ref: forget [−ln3, −ln2], idk [−2·ln3, −ln6].
REFERENCE = FixedReference({"forget": [-LN3, -LN2], "idk": [-2 * LN3, -math.log(6)]})


def run(name: str, **hparams) -> LossOutput:
    return build_loss(name, **hparams)(TablePolicy(TABLE), BATCH, REFERENCE)


def assert_close(actual: torch.Tensor, expected: float) -> None:
    torch.testing.assert_close(actual, torch.tensor(expected), rtol=1e-5, atol=1e-6)


def test_sequence_nll_and_token_counts() -> None:
    """Row 0: ln3 (uniform, label 1) + ln4 (token 1's row, label 2) = ln12. Row 1: ln2 (label 0)."""
    logits = TablePolicy(TABLE)(FORGET["input_ids"], None).logits
    torch.testing.assert_close(sequence_nll(logits, FORGET["labels"]), torch.tensor([math.log(12), LN2]))
    torch.testing.assert_close(token_counts(FORGET["labels"]), torch.tensor([2, 1]))


def test_token_mean_nll_by_hand() -> None:
    """(ln12 + ln2) / 3 label tokens = ln24 / 3: long answers weigh more, as in HF."""
    logits = TablePolicy(TABLE)(FORGET["input_ids"], None).logits
    assert_close(token_mean_nll(logits, FORGET["labels"]), math.log(24) / 3)


def tiny_llama():
    """A seeded 2-layer Llama over a vocabulary of 32 (no tokenizer)."""
    return build_tiny_llama(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=64)


def llama_split(seed: int, batch_size: int = 2, length: int = 8) -> dict[str, torch.Tensor]:
    """Random ids; the first 3 tokens are the prompt; the last row has 2 padding tokens at the end."""
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, 32, (batch_size, length), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[-1, -2:] = 0
    input_ids[-1, -2:] = 0
    labels = input_ids.clone()
    labels[:, :3] = IGNORE_INDEX
    labels[attention_mask == 0] = IGNORE_INDEX
    index = torch.arange(batch_size)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "index": index}


def test_token_mean_nll_matches_hugging_face_loss() -> None:
    model = tiny_llama()
    inputs = llama_split(seed=1)
    out = model(
        input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=inputs["labels"]
    )
    torch.testing.assert_close(token_mean_nll(out.logits, inputs["labels"]), out.loss)


def test_model_reference_is_frozen_and_ignores_padding() -> None:
    """A row's log-prob does not change when padding (label −100, mask 0) is appended to it."""
    reference = ModelReference(tiny_llama())
    assert isinstance(reference, Reference)
    assert not reference.model.training
    assert not any(p.requires_grad for p in reference.model.parameters())
    padded = llama_split(seed=2)
    unpadded = {key: value[-1:, :-2] for key, value in padded.items() if key != "index"}
    logps = reference.sequence_logps(padded, "forget")
    assert not logps.requires_grad
    torch.testing.assert_close(logps[-1:], reference.sequence_logps(unpadded, "forget"))
    torch.testing.assert_close(logps, -sequence_nll(reference.logits(padded), padded["labels"]))


def test_ga() -> None:
    """−(ln12 + ln2) / 3 = −ln24 / 3."""
    out = run("ga")
    assert_close(out.loss, -math.log(24) / 3)
    assert_close(out.forget_loss, -math.log(24) / 3)
    assert out.retain_loss is None


def test_grad_diff() -> None:
    """−1·ln24/3 (forget) + 2·ln24/3 (retain NLL) = ln24/3."""
    out = run("grad_diff", c_forget=1.0, c_rt=2.0)
    assert_close(out.forget_loss, -math.log(24) / 3)
    assert_close(out.retain_loss, 2 * math.log(24) / 3)
    assert_close(out.loss, math.log(24) / 3)


def test_kl_masks() -> None:
    """KL(uniform ‖ π_θ) per retain position: row 0 (tokens 1,0,2) [K, 0, K]; row 1 (0,1,0) [0, K, 0].

    all: every one of the B·T = 6 positions, (3K) / 6 = K/2.
    answer: positions whose next label is scored: row 0 t=0 (K), t=1 (0); row 1 t=1 (K) -> 2K/3.
    """
    policy, reference = TablePolicy(TABLE), ModelReference(TablePolicy(torch.zeros(3, 3)))
    assert_close(RetainTerm("kl", 1.0, "all")(policy, RETAIN, reference), K / 2)
    assert_close(RetainTerm("kl", 1.0, "answer")(policy, RETAIN, reference), 2 * K / 3)


def test_kl_strategy() -> None:
    """−ln24/3 + 3·(2K/3) with answer mask; −ln24/3 + 3·(K/2) with every position."""
    assert_close(run("kl", c_kl=3.0).loss, -math.log(24) / 3 + 2 * K)
    assert_close(run("kl", c_kl=3.0, kl_mask="all").loss, -math.log(24) / 3 + 1.5 * K)


def test_idk() -> None:
    """IDK answers under uniform rows: 3 tokens, 3·ln3; retain 3 tokens, ln24 (more in test_loss_scales.py).

    joint (default, one token mean): (3·ln3 + 0.5·ln24) / 6. separate: 3·ln3/3 + 0.5·ln24/3.
    """
    out = run("idk", c_rt=0.5)
    assert_close(out.forget_loss, LN3 / 2)
    assert_close(out.loss, LN3 / 2 + math.log(24) / 12)
    out = run("idk", c_rt=0.5, idk_mean="separate")
    assert_close(out.forget_loss, LN3)
    assert_close(out.loss, LN3 + math.log(24) / 6)


def test_dpo() -> None:
    """β = 1. log πθ − log πref: idk [−2ln3 + 2ln3, −ln3 + ln6] = [0, ln2];
    forget [−ln12 + ln3, −ln2 + ln2] = [−ln4, 0].

    margins [ln4, ln2]; σ(ln x) = x/(1+x) gives σ = [4/5, 2/3];
    loss = −(2/1)·mean(ln(4/5), ln(2/3)) = ln(5/4) + ln(3/2) = ln(15/8).
    With a KL retain term (uniform reference logits, answer mask) add 2K/3.
    """
    out = run("dpo", beta=1.0)
    assert_close(out.loss, math.log(15 / 8))
    assert out.retain_loss is None
    assert_close(out.extras["reward_margin"], 1.5 * LN2)
    with_kl = build_loss("dpo", beta=1.0, retain="kl", c_kl=1.0)
    assert with_kl.uses_retain and with_kl.needs_reference_logits
    assert_close(with_kl(TablePolicy(TABLE), BATCH, REFERENCE).loss, math.log(15 / 8) + 2 * K / 3)


def test_npo_and_extras() -> None:
    """β = 1. NLL_θ − NLL_ref = [ln12 − ln3, ln2 − ln2] = [ln4, 0]; σ = [4/5, 1/2].

    loss = −(2/1)·mean(ln(4/5), ln(1/2)) = ln(5/4) + ln2 = ln(5/2).
    log_ratio = mean(log πθ − log πref) = mean(−ln4, 0) = −ln2.
    sample_weight = mean(2σ(−ln4), 2σ(0)) = mean(2/5, 1) = 0.7.
    forget_nll = mean(ln12, ln2) = ln24 / 2.
    """
    out = run("npo", beta=1.0)
    assert_close(out.loss, math.log(5 / 2))
    assert_close(out.extras["log_ratio"], -LN2)
    assert_close(out.extras["sample_weight"], 0.7)
    assert_close(out.extras["forget_nll"], math.log(24) / 2)
    assert all(not value.requires_grad for value in out.extras.values())


def test_npo_rt() -> None:
    """2·ln(5/2) (c_npo = 2 times the NPO value above) + 0.5·ln24/3 (retain NLL)."""
    out = run("npo_rt", beta=1.0, c_npo=2.0, c_rt=0.5)
    assert_close(out.forget_loss, 2 * math.log(5 / 2))
    assert_close(out.loss, 2 * math.log(5 / 2) + math.log(24) / 6)


def test_npo_kl() -> None:
    """ln(5/2) + K/2 (every-position KL against uniform reference logits, see test_kl_masks)."""
    assert_close(run("npo_kl", beta=1.0, kl_mask="all").loss, math.log(5 / 2) + K / 2)


def test_simnpo() -> None:
    """NLLbar = [ln12 / 2, ln2 / 1]; β = 2 gives β·NLLbar = [ln12, ln4], σ = [12/13, 4/5].

    γ = 0: −(2/2)·mean(ln(12/13), ln(4/5)) = ln(65/48) / 2.
    γ = ln2: arguments [ln6, ln2], σ = [6/7, 2/3] -> (ln(7/6) + ln(3/2)) / 2 = ln(7/4) / 2.
    The default retain NLL adds ln24/3; c_npo = 0.5 halves the forget term.
    """
    assert_close(run("simnpo", beta=2.0, retain="none").loss, math.log(65 / 48) / 2)
    assert_close(run("simnpo", beta=2.0, gamma=LN2, retain="none").loss, math.log(7 / 4) / 2)
    out = run("simnpo", beta=2.0, c_npo=0.5)
    assert_close(out.forget_loss, math.log(65 / 48) / 4)
    assert_close(out.loss, math.log(65 / 48) / 4 + math.log(24) / 3)


def forget_nll(policy: TablePolicy) -> torch.Tensor:
    return sequence_nll(policy(FORGET["input_ids"], None).logits, FORGET["labels"])


def table_grad(loss_fn) -> torch.Tensor:
    policy = TablePolicy(TABLE)
    loss_fn(policy).backward()
    return policy.table.grad


def test_npo_gradient_tends_to_ga_on_sum_nll() -> None:
    """∇[−(2/β) logσ(−β·r)] = 2σ(β·r)·∇r with r = log πθ − log πref.

    σ(β·r) -> 1/2 as β -> 0, leaving ∇ log πθ = −∇ NLL: gradient ascent on the sequence-sum NLL,
    averaged over the batch.
    """
    npo = build_loss("npo", beta=1e-4)
    got = table_grad(lambda policy: npo(policy, BATCH, REFERENCE).loss)
    want = table_grad(lambda policy: -forget_nll(policy).mean())
    torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)


def test_npo_gradient_weights_samples_by_two_sigmoid() -> None:
    """β = 1: per-sample weights 2σ(r) = [2σ(−ln4), 2σ(0)] = [2/5, 1] on the GA gradient."""
    npo = build_loss("npo", beta=1.0)
    got = table_grad(lambda policy: npo(policy, BATCH, REFERENCE).loss)
    weights = torch.tensor([0.4, 1.0])
    want = table_grad(lambda policy: -(weights * forget_nll(policy)).mean())
    torch.testing.assert_close(got, want)
