"""The per-example loop (the benchmark's yardstick) computes exactly what the batched evaluator does."""

import numpy as np
import pytest

from unlearn.evaluation.evaluator import TofuEvaluator
from unlearn.evaluation.naive import naive_evaluate
from tests.test_evaluation import scrambled_model, tiny_splits, tokenizer  # noqa: F401  (fixture)


def test_naive_loop_and_batched_evaluator_agree(tokenizer):  # noqa: F811
    model = scrambled_model(tokenizer, seed=2)
    splits = tiny_splits()
    batched = TofuEvaluator(tokenizer, splits, max_length=64, max_new_tokens=6, batch_size=4)(model)
    naive = naive_evaluate(model, tokenizer, splits, max_length=64, max_new_tokens=6)
    for name in splits:
        a, b = batched.splits[name], naive.splits[name]
        assert a.generation == b.generation
        np.testing.assert_allclose(a.answer_nll, b.answer_nll, rtol=1e-5)
        np.testing.assert_allclose(a.base_nll, b.base_nll, rtol=1e-5)
        np.testing.assert_allclose(a.perturbed_nll, b.perturbed_nll, rtol=1e-5)
        np.testing.assert_allclose(a.rouge_l, b.rouge_l)
    summary_a, summary_b = batched.summary(), naive.summary()
    assert summary_a.keys() == summary_b.keys()
    for key, value in summary_a.items():
        if value is not None:
            assert value == pytest.approx(summary_b[key], rel=1e-5), key
