"""Group-wise round-to-nearest quantisation (unlearn.attacks.quantize): hand-worked codes, the error bound, models."""

import pytest
import torch

from tests.helpers import tiny_model, tiny_tokenizer
from unlearn.attacks.quantize import quantizable_linears, quantize_model_, quantize_tensor


def _close(actual, expected):
    torch.testing.assert_close(actual, torch.tensor(expected), atol=1e-6, rtol=0)


def test_four_bit_asymmetric_by_hand():
    # Group 1: min -1, max 2 -> scale 3/15 = 0.2, zero point round(1/0.2) = 5;
    #   codes round(w/0.2) + 5 = 0, 5, round(2.25)+5 = 7, 15 -> (code - 5) * 0.2 = -1, 0, 0.4, 2.
    # Group 2: all positive, so the range is [0, 1.5] (zero included): scale 0.1, zero point 0;
    #   codes 15, round(1.3) = 1, round(2.6) = 3, round(7.4) = 7 -> 1.5, 0.1, 0.3, 0.7.
    w = torch.tensor([[-1.0, 0.0, 0.45, 2.0, 1.5, 0.13, 0.26, 0.74]])
    out, scale = quantize_tensor(w, bits=4, group_size=4, return_scale=True)
    _close(out, [[-1.0, 0.0, 0.4, 2.0, 1.5, 0.1, 0.3, 0.7]])
    _close(scale, [[0.2] * 4 + [0.1] * 4])


def test_four_bit_symmetric_by_hand():
    # max|w| = 0.7 -> scale 0.7 / 7 = 0.1; codes 7, round(-3.6) = -4, 1, 0 (within [-8, 7]).
    _close(quantize_tensor(torch.tensor([[0.7, -0.36, 0.1, 0.0]]), 4, 4, symmetric=True), [[0.7, -0.4, 0.1, 0.0]])


def test_eight_bit_by_hand():
    # Asymmetric, one group per row: range [-0.5, 2.05] -> scale 2.55 / 255 = 0.01, zero point 50;
    #   0.024 -> round(2.4) = 2 -> 0.02; the ends are exact.
    _close(quantize_tensor(torch.tensor([[-0.5, 0.024, 2.05]]), 8, 0), [[-0.5, 0.02, 2.05]])
    # Symmetric: max|w| = 1.27 -> scale 1.27 / 127 = 0.01; 0.013 -> round(1.3) = 1 -> 0.01.
    _close(quantize_tensor(torch.tensor([[-1.27, 0.5, 0.013, 0.6]]), 8, 4, symmetric=True),
           [[-1.27, 0.5, 0.01, 0.6]])


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("group_size", [0, 32, 128])
def test_round_trip_error_is_at_most_half_a_step(bits, symmetric, group_size):
    generator = torch.Generator().manual_seed(bits)
    w = torch.randn(12, 200, generator=generator)
    w[3] = w[3].abs() + 0.5  # one sign only: its range is widened to include 0, never clamped
    w[4] = 0.0  # an all-zero row stays exactly zero
    w[5, :40] = 1e-9  # a group of tiny weights
    out, scale = quantize_tensor(w, bits, group_size, symmetric, return_scale=True)
    assert out.shape == w.shape and out.dtype == w.dtype
    assert torch.all((out - w).abs() <= scale / 2 * (1 + 1e-5) + 1e-12)
    assert torch.equal(out[4], torch.zeros(200))
    again = quantize_tensor(out, bits, group_size, symmetric)
    torch.testing.assert_close(again, out, atol=1e-6, rtol=0)  # already on the grid: rounding again changes nothing
    assert max(len(torch.unique(row[:group_size or 200])) for row in out) <= 2 ** bits  # codes per group


def test_a_short_last_group_is_quantised_on_its_own():
    w = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
    whole = quantize_tensor(w, 4, group_size=4)
    torch.testing.assert_close(whole[:, :4], quantize_tensor(w[:, :4], 4, 0))
    torch.testing.assert_close(whole[:, 4:], quantize_tensor(w[:, 4:], 4, 0))


def test_half_precision_weights_keep_their_dtype():
    w = torch.randn(4, 64).to(torch.bfloat16)
    out = quantize_tensor(w, 4, 32)
    assert out.dtype == torch.bfloat16
    assert not torch.equal(out, w)


def test_bits_out_of_range_are_refused():
    with pytest.raises(ValueError, match="between 2 and 8"):
        quantize_tensor(torch.ones(2, 2), 1)


@pytest.fixture(scope="module")
def model_and_ids():
    tokenizer = tiny_tokenizer()
    ids = tokenizer("What is the home city of writer number 3? Writer number 3 lives in", return_tensors="pt").input_ids
    return tokenizer, ids


@torch.no_grad()
def test_model_outputs_change_but_stay_close_at_eight_bits(model_and_ids):
    tokenizer, ids = model_and_ids
    logits = {}
    for bits in (None, 8, 4):
        model = tiny_model(tokenizer).eval()
        embeddings = model.get_input_embeddings().weight.clone()
        norm = model.model.norm.weight.clone()
        if bits is not None:
            names = quantize_model_(model, bits)
            assert "lm_head" not in names and "model.layers.0.self_attn.q_proj" in names
            assert len(names) == 2 * 7  # q, k, v, o, gate, up, down in each of 2 layers
            assert torch.equal(model.get_input_embeddings().weight, embeddings)  # tied to the kept head
            assert torch.equal(model.model.norm.weight, norm)
        logits[bits] = model(ids).logits
    error8 = (logits[8] - logits[None]).abs().max().item()
    error4 = (logits[4] - logits[None]).abs().max().item()
    assert 0 < error8 < 0.01 * logits[None].abs().max().item()
    assert error4 > error8


@torch.no_grad()
def test_including_the_head_rounds_the_tied_embeddings_too(model_and_ids):
    tokenizer, _ = model_and_ids
    model = tiny_model(tokenizer)
    before = model.get_input_embeddings().weight.clone()
    assert "lm_head" in quantizable_linears(model, include_head=True)
    quantize_model_(model, 4, include_head=True)
    assert not torch.equal(model.get_input_embeddings().weight, before)
