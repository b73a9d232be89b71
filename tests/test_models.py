"""Small model helpers: eval_mode and the seeded tiny Llama builder."""

import pytest
import torch
from torch import nn

from tests.helpers import tiny_model, tiny_tokenizer
from unlearn.models.loading import build_tiny_llama
from unlearn.models.modes import eval_mode


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))


def test_eval_mode_sets_eval_and_restores_train_mode():
    net = _net().train()
    with eval_mode(net) as inside:
        assert inside is net and not any(m.training for m in net.modules())
    assert all(m.training for m in net.modules())


def test_eval_mode_keeps_an_eval_model_in_eval_mode():
    net = _net().eval()
    with eval_mode(net):
        pass
    assert not any(m.training for m in net.modules())


def test_eval_mode_restores_train_mode_when_the_block_raises():
    net = _net().train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(net):
        assert not net.training
        raise RuntimeError("boom")
    assert all(m.training for m in net.modules())


def test_tiny_llama_is_seeded_and_takes_config_overrides():
    tokenizer = tiny_tokenizer()
    state = torch.random.get_rng_state()
    a, b = tiny_model(tokenizer, seed=3), tiny_model(tokenizer, seed=3, attention_dropout=0.3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global random state is left alone
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert (b.config.attention_dropout, a.config.attention_dropout) == (0.3, 0.0)
    assert a.config.vocab_size == len(tokenizer) and a.config.pad_token_id == tokenizer.eos_token_id

    plain = build_tiny_llama(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                             intermediate_size=32, tie_word_embeddings=False)
    assert plain.config.vocab_size == 32 and not plain.config.tie_word_embeddings
    with pytest.raises(TypeError, match="vocab_size"):
        build_tiny_llama(hidden_size=16)
