"""How the KL and IDK terms are normalised, against hand-worked values and the reference code's expressions.

The table policy of tests/test_losses.py (vocabulary of 3, logits at a position set by the token
there) against a uniform reference: KL(uniform ‖ π_θ) is 0 at a position holding token 0 and K at
one holding token 1 or 2 (K = ln(32/27) / 3). Token 1 plays EOS and pad.

    KL_RETAIN   row 0: ids [0, 2, 1, 1] mask [1, 1, 1, 0] labels [-100, 2, 1, -100]   KL [0, K, K, K]
                row 1: ids [0, 0, 2, 1] mask [1, 1, 1, 1] labels [-100, -100, 2, 1]   KL [0, 0, K, K]

    answer: the positions predicting a label, row 0 t = 0, 1 (0 + K), row 1 t = 1, 2 (0 + K): 2K / 4 = K/2.
    all:    every position of the batch as collated, 5K / (B·T = 8) = 5K/8.
    padded, max_length 6: each row continued to 6 positions with its last id (1, KL K), so 5K + 4K
            over B·max_length = 12: 3K/4. (Dividing only the 8 collated positions by 12 would give
            5K/12; the NPO code pads to max_length before the forward, so its padding positions count.)
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.test_losses import BATCH, FORGET, REFERENCE, RETAIN, TABLE, K, TablePolicy, assert_close, split
from unlearn.config.loading import load_config
from unlearn.data.formatting import IGNORE_INDEX, TokenizedExample, collate
from unlearn.errors import ConfigError
from unlearn.losses import build_loss, build_loss_from_config
from unlearn.losses.retain import RetainTerm, pad_to_length
from unlearn.models.loading import build_tiny_llama
from unlearn.reference.references import ModelReference

LN3, LN24 = math.log(3), math.log(24)
KL_RETAIN = {
    "input_ids": torch.tensor([[0, 2, 1, 1], [0, 0, 2, 1]]),
    "attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]]),
    "labels": torch.tensor([[-100, 2, 1, -100], [-100, -100, 2, 1]]),
    "index": torch.arange(2),
}
UNIFORM = ModelReference(TablePolicy(torch.zeros(3, 3)))


def kl(kl_mask: str, max_length: int | None = None) -> torch.Tensor:
    return RetainTerm("kl", 1.0, kl_mask, max_length)(TablePolicy(TABLE), KL_RETAIN, UNIFORM)


def test_kl_answer_mask_by_hand() -> None:
    assert_close(kl("answer"), K / 2)


def test_kl_all_positions_by_hand() -> None:
    """open-unlearning's compute_kl_divergence: every collated position, / B·T_longest."""
    assert_close(kl("all"), 5 * K / 8)


def test_kl_padded_by_hand() -> None:
    """The NPO code's scale: the batch padded to max_length first, then / B·max_length."""
    assert_close(kl("padded", max_length=6), 3 * K / 4)
    assert_close(kl("padded", max_length=4), 5 * K / 8)  # already max_length wide: the same as "all"


def test_pad_to_length_masks_and_ignores_the_new_positions() -> None:
    padded = pad_to_length(KL_RETAIN, 6)
    assert padded["input_ids"].tolist() == [[0, 2, 1, 1, 1, 1], [0, 0, 2, 1, 1, 1]]
    assert padded["attention_mask"].tolist() == [[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]]
    assert padded["labels"][:, 4:].eq(IGNORE_INDEX).all() and padded["index"] is KL_RETAIN["index"]
    assert pad_to_length(KL_RETAIN, 4) is KL_RETAIN
    with pytest.raises(ValueError, match="max_length=3, but it is 4 wide"):
        pad_to_length(KL_RETAIN, 3)


def test_padded_needs_max_length() -> None:
    with pytest.raises(ValueError, match="needs max_length"):
        build_loss("npo_kl", kl_mask="padded")
    with pytest.raises(ValueError, match="max_length must be an integer"):
        build_loss("kl", kl_mask="padded", max_length=0)
    build_loss("dpo", kl_mask="padded")  # no KL term (retain="none"): nothing to divide


def test_kl_strategies_with_each_mask() -> None:
    """GA forget term −ln24/3 (tests/test_losses.py) + c_kl · the KL above; at β = 1 NPO-KL is ln(5/2) + KL
    and DPO with retain=kl ln(15/8) + KL (tests/test_losses.py's test_npo_and_extras and test_dpo)."""
    batch = {"forget": FORGET, "retain": KL_RETAIN}
    for mask, value, max_length in (("answer", K / 2, None), ("all", 5 * K / 8, None), ("padded", 3 * K / 4, 6)):
        out = build_loss("kl", c_kl=2.0, kl_mask=mask, max_length=max_length)(TablePolicy(TABLE), batch, UNIFORM)
        assert_close(out.loss, -LN24 / 3 + 2 * value)
    # REFERENCE: tests/test_losses.py's log π_ref of FORGET and uniform logits.
    out = build_loss("npo_kl", beta=1.0, kl_mask="padded", max_length=6)(TablePolicy(TABLE), batch, REFERENCE)
    assert_close(out.loss, math.log(5 / 2) + 3 * K / 4)
    dpo = build_loss("dpo", beta=1.0, retain="kl", kl_mask="padded", max_length=6)
    assert_close(dpo(TablePolicy(TABLE), {**BATCH, "retain": KL_RETAIN}, REFERENCE).loss, math.log(15 / 8) + 3 * K / 4)


def tiny_llama(seed: int):
    return build_tiny_llama(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=64, seed=seed)


EOS = 2


def examples(lengths: list[int], prompt: int, seed: int) -> list[TokenizedExample]:
    """Rows of random ids ending in EOS; the first ``prompt`` tokens are unlabelled."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for n in lengths:
        ids = torch.randint(3, 32, (n - 1,), generator=generator).tolist() + [EOS]
        rows.append(TokenizedExample(ids, [IGNORE_INDEX] * prompt + ids[prompt:], False))
    return rows


def padded_like_the_npo_code(rows: list[TokenizedExample], max_length: int) -> dict[str, torch.Tensor]:
    """Every row padded to max_length with EOS, mask 0 and label −100 (convert_raw_data_to_model_format)."""
    pad = [max_length - len(r.input_ids) for r in rows]
    return {"input_ids": torch.tensor([r.input_ids + [EOS] * p for r, p in zip(rows, pad)]),
            "attention_mask": torch.tensor([[1] * len(r.input_ids) + [0] * p for r, p in zip(rows, pad)]),
            "labels": torch.tensor([r.labels + [IGNORE_INDEX] * p for r, p in zip(rows, pad)])}


def test_padded_equals_the_npo_codes_kl_on_max_length_batches() -> None:
    """A dynamically padded batch gives the NPO code's expression on its 500-style padded batch:
    ``kl_div(log_softmax(θ).view(-1, V), log_softmax(ref).view(-1, V), "batchmean", log_target=True)``."""
    policy, reference = tiny_llama(0), tiny_llama(1)
    rows, max_length = examples([7, 5, 9], prompt=3, seed=0), 16
    full = padded_like_the_npo_code(rows, max_length)
    with torch.no_grad():
        log_p = F.log_softmax(policy(input_ids=full["input_ids"], attention_mask=full["attention_mask"]).logits, -1)
        log_r = F.log_softmax(reference(input_ids=full["input_ids"], attention_mask=full["attention_mask"]).logits, -1)
        expected = F.kl_div(log_p.view(-1, 32), log_r.view(-1, 32), reduction="batchmean", log_target=True)
        got = RetainTerm("kl", 1.0, "padded", max_length)(policy, collate(rows, EOS), ModelReference(reference))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert got > 0


# IDK: answers of 3 + 1 label tokens under uniform rows, each ln3 (S_idk = 4·ln3, 4 tokens); RETAIN
# (tests/test_losses.py) has token NLLs ln2, ln3, ln4 (S_retain = ln24, 3 tokens).
IDK = split([[0, 0, 0, 0], [0, 0, 0, 0]], [[-100, 1, 2, 0], [-100, -100, 1, -100]])
IDK_BATCH = {"idk": IDK, "retain": RETAIN}


def test_idk_joint_token_mean_by_hand() -> None:
    """The reference code's one mean: (4·ln3 + c_rt·ln24) / 7 tokens."""
    out = build_loss("idk")(TablePolicy(TABLE), IDK_BATCH, None)
    assert_close(out.loss, (4 * LN3 + LN24) / 7)
    out = build_loss("idk", c_rt=2.0)(TablePolicy(TABLE), IDK_BATCH, None)
    assert_close(out.forget_loss, 4 * LN3 / 7)
    assert_close(out.retain_loss, 2 * LN24 / 7)
    assert_close(out.loss, (4 * LN3 + 2 * LN24) / 7)
    assert_close(out.extras["idk_nll"], LN3)
    assert_close(out.extras["retain_nll"], LN24 / 3)


def test_idk_separate_means_by_hand() -> None:
    """Two means, added: 4·ln3 / 4 + c_rt · ln24 / 3."""
    out = build_loss("idk", c_rt=2.0, idk_mean="separate")(TablePolicy(TABLE), IDK_BATCH, None)
    assert_close(out.forget_loss, LN3)
    assert_close(out.loss, LN3 + 2 * LN24 / 3)
    with pytest.raises(ValueError, match="idk_mean must be one of"):
        build_loss("idk", idk_mean="mean")


def test_idk_joint_equals_one_forward_over_the_concatenation() -> None:
    """TOFU's idk branch: cat(idk, retain) along the batch, one forward, Hugging Face's loss."""
    model = tiny_llama(0)
    idk_rows, retain_rows = examples([6, 4], prompt=3, seed=1), examples([9, 8, 5], prompt=2, seed=2)
    together = collate(idk_rows + retain_rows, EOS)  # one width for all five rows, as the concatenation needs
    with torch.no_grad():
        expected = model(**{k: together[k] for k in ("input_ids", "attention_mask", "labels")}).loss
        batch = {"idk": collate(idk_rows, EOS), "retain": collate(retain_rows, EOS)}  # 6 and 9 wide
        got = build_loss("idk")(model, batch, None).loss
    torch.testing.assert_close(got, expected)


def test_the_composition_root_passes_max_length_only_where_taken() -> None:
    cfg = load_config(["loss/npo_kl"], ["data.max_length=64"])
    assert build_loss_from_config(cfg.loss, max_length=cfg.data.max_length).hparams()["max_length"] == 64
    with pytest.raises(ConfigError, match="loss.kl_mask 'padded'.*needs max_length"):
        build_loss_from_config(cfg.loss)
    default = load_config()  # `python -m unlearn fit`: npo_rt, which has no KL term and takes no max_length
    assert "max_length" not in build_loss_from_config(default.loss, max_length=default.data.max_length).hparams()
    assert load_config(["loss/kl"]).loss.kl_mask == "padded" and load_config(["loss/idk"]).loss.idk_mean == "joint"
