"""Batched per-token statistics equal a direct one-example computation, in float32 whatever the model dtype."""

import numpy as np
import pytest
import torch

from tests.helpers import QA, tiny_tokenizer
from tests.test_evaluation import scrambled_model
from unlearn.data.formatting import PromptFormat, TokenizedExample, tokenize_qa
from unlearn.evaluation.muse import completion_example
from unlearn.models.token_stats import TokenStats, token_stats

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def examples(tokenizer):
    """Question/answer pairs and whole texts of very different lengths, one with nothing scored."""
    fmt = PromptFormat("plain")
    qa = [tokenize_qa(tokenizer, fmt, r["question"], r["answer"] * (1 + i % 3), 96) for i, r in enumerate(QA[:5])]
    texts = [completion_example(tokenizer, "", r["question"] + " " + r["answer"], 96) for r in QA[5:8]]
    empty = TokenizedExample(qa[0].input_ids, [-100] * len(qa[0].input_ids), False)
    return [qa[0], texts[0], qa[1], empty, qa[2], texts[1], qa[3], texts[2], qa[4]]


def direct(model, example):
    """One example alone, no padding; vocabulary statistics as textbook expectations, in float64."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([example.input_ids])).logits[0, :-1].float()
    labels = torch.tensor(example.labels[1:])
    keep = labels != -100
    log_p = torch.log_softmax(logits[keep].double(), -1)  # float64: the textbook variance loses nothing
    p = log_p.exp()
    target = labels[keep]
    mu = (p * log_p).sum(-1)
    sigma = ((p * log_p ** 2).sum(-1) - mu ** 2).sqrt()
    return {"logprob": log_p[torch.arange(len(target)), target].numpy(), "mu": mu.numpy(),
            "sigma": sigma.numpy(), "greedy_match": (logits[keep].argmax(-1) == target).numpy()}


def test_batched_statistics_equal_one_example_at_a_time(tokenizer):
    model = scrambled_model(tokenizer, seed=4)
    data = examples(tokenizer)
    stats = token_stats(model, data, tokenizer.pad_token_id, batch_size=4)
    assert len(stats) == len(data)
    for i, example in enumerate(data):
        expected = direct(model, example)
        n = sum(label != -100 for label in example.labels[1:])
        for name in ("logprob", "mu", "sigma"):
            values = getattr(stats, name)[i]
            assert values.dtype == np.float32 and values.shape == (n,), (i, name)
            np.testing.assert_allclose(values, expected[name], rtol=1e-4, atol=1e-5, err_msg=f"{i} {name}")
        assert stats.greedy_match[i].dtype == bool
        np.testing.assert_array_equal(stats.greedy_match[i], expected["greedy_match"])
    assert len(stats.logprob[3]) == 0  # nothing scored: empty arrays, not an error


def test_statistics_are_float32_under_a_bfloat16_model(tokenizer):
    model = scrambled_model(tokenizer, seed=5).to(torch.bfloat16)
    data = examples(tokenizer)[:3]
    stats = token_stats(model, data, tokenizer.pad_token_id, batch_size=2)
    for i, example in enumerate(data):
        expected = direct(model, example)  # float32 log-softmax of the bfloat16 logits
        assert stats.logprob[i].dtype == np.float32 and stats.mu[i].dtype == np.float32
        # Padding changes bfloat16 matmuls a little, so compare loosely; the float32 part is exact.
        np.testing.assert_allclose(stats.logprob[i], expected["logprob"], atol=0.1)
        np.testing.assert_allclose(stats.mu[i], expected["mu"], atol=0.1)


def test_context_wraps_every_forward_and_vocab_stats_can_be_skipped(tokenizer):
    model = scrambled_model(tokenizer)
    entered = []

    class Context:
        def __enter__(self):
            entered.append(1)

        def __exit__(self, *exc):
            return False

    data = examples(tokenizer)
    stats = token_stats(model, data, tokenizer.pad_token_id, batch_size=4, context=Context, vocab_stats=False)
    assert len(entered) == 3  # 9 examples in batches of 4
    assert stats.mu is None and stats.sigma is None
    full = token_stats(model, data, tokenizer.pad_token_id, batch_size=9)
    for a, b in zip(stats.logprob, full.logprob):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_select_and_concat_keep_example_order():
    a = TokenStats([np.array([1.0]), np.array([2.0, 3.0])], [np.array([True]), np.array([False, True])])
    b = TokenStats([np.array([4.0])], [np.array([False])])
    joined = TokenStats.concat([a, b])
    assert [x.tolist() for x in joined.logprob] == [[1.0], [2.0, 3.0], [4.0]]
    assert joined.mu is None
    picked = joined.select([2, 0])
    assert [x.tolist() for x in picked.logprob] == [[4.0], [1.0]]
    assert [x.tolist() for x in picked.greedy_match] == [[False], [True]]
