"""The batched evaluator agrees with a plain per-question loop; splits, shards and gathered values."""

import numpy as np
import pytest
import torch

from tests.helpers import QA, tiny_model, tiny_tokenizer
from unlearn.data.formatting import PromptFormat, prompt_ids
from unlearn.evaluation import TofuEvaluator, load_eval_splits
from unlearn.evaluation.evaluator import PerQuestionValues, shard
from unlearn.evaluation.generation import greedy_generate
from unlearn.evaluation.metrics import rouge_l_recall
from unlearn.models.scoring import answer_nll
from unlearn.names import MODEL_UTILITY, metric_key

pytestmark = pytest.mark.usefixtures("one_thread")


def scrambled_model(tokenizer, seed=0):
    """A tiny Llama whose greedy output depends on the whole prompt.

    A freshly initialised one mostly repeats the prompt's last token, which would hide a padding
    bug; large random weights outside the (tied) embeddings make every prompt answer differently.
    """
    model = tiny_model(tokenizer, seed=seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for name, param in model.named_parameters():
            if "embed" not in name and "norm" not in name:
                param.data.normal_(0, 0.5)
    return model.eval()


def author_rows(rows):
    return [dict(r, paraphrased_answer=r["answer"].replace("lives in", "has a home in"),
                 perturbed_answer=[r["answer"].replace("city", "town"), "Nobody knows.", f"City {i} is far away."])
            for i, r in enumerate(rows)]


def general_rows(rows):
    # Uneven numbers of perturbed answers, as a hand-made benchmark might have.
    return [dict(r, perturbed_answer=["city 1", "city 22"] if i % 2 else ["city 3", "a town", "no city at all"])
            for i, r in enumerate(rows)]


def tiny_splits():
    return {"forget": author_rows(QA[:5]), "retain": author_rows(QA[5:11]),
            "real_authors": general_rows(QA[11:17]), "world_facts": general_rows(QA[17:])}


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token  # as load_tokenizer does
    return tok


def test_batched_generation_matches_one_prompt_at_a_time(tokenizer):
    model = scrambled_model(tokenizer)
    prompts = [prompt_ids(tokenizer, PromptFormat("plain"), r["question"]) for r in QA[:6]]
    prompts[2] = prompts[2][:4]  # a much shorter prompt: most of its row is left padding
    batched = greedy_generate(model, tokenizer, prompts, max_new_tokens=8, batch_size=6)
    single = [greedy_generate(model, tokenizer, [p], max_new_tokens=8, batch_size=1)[0] for p in prompts]
    assert batched == single
    assert len(set(batched)) > 1  # the check means something only if answers differ


def test_evaluator_matches_a_per_question_loop(tokenizer):
    """Every per-question number equals the one from scoring each (question, answer) pair alone."""
    model = scrambled_model(tokenizer, seed=1)
    splits = tiny_splits()
    result = TofuEvaluator(tokenizer, splits, max_length=64, max_new_tokens=6, batch_size=5)(model)

    def nll_bar(question, answer):
        total, count = answer_nll(model, tokenizer, [question], [answer], max_length=64, batch_size=1)
        return (total / count).item()

    for name, rows in splits.items():
        values = result.splits[name]
        assert values.index.tolist() == list(range(len(rows)))
        base = "paraphrased_answer" if name in ("forget", "retain") else "answer"
        for i, row in enumerate(rows):
            assert values.answer_nll[i] == pytest.approx(nll_bar(row["question"], row["answer"]), rel=1e-5)
            assert values.base_nll[i] == pytest.approx(nll_bar(row["question"], row[base]), rel=1e-5)
            expected = [nll_bar(row["question"], p) for p in row["perturbed_answer"]]
            np.testing.assert_allclose(values.perturbed_nll[i, :len(expected)], expected, rtol=1e-5)
            assert np.isnan(values.perturbed_nll[i, len(expected):]).all()
            prompt = prompt_ids(tokenizer, PromptFormat("plain"), row["question"])
            assert values.generation[i] == greedy_generate(model, tokenizer, [prompt], 6, 1)[0]
        np.testing.assert_allclose(values.rouge_l, rouge_l_recall(values.generation, values.answer))
    assert set(result.summary()) >= {metric_key("forget", "truth_ratio"), MODEL_UTILITY}


def test_evaluator_restores_training_mode(tokenizer):
    model = scrambled_model(tokenizer).train()
    TofuEvaluator(tokenizer, tiny_splits(), max_length=64, max_new_tokens=2)(model)
    assert model.training


def test_eval_splits_of_real_tofu(tofu_dir):
    """TOFU's four evaluation files; eval.max_rows caps forget and retain only (the legacy 300)."""
    full = load_eval_splits(tofu_dir, "forget01")
    assert {k: len(v) for k, v in full.items()} == {"forget": 40, "retain": 400, "real_authors": 100,
                                                     "world_facts": 117}
    capped = load_eval_splits(tofu_dir, "forget10", max_rows=300)
    assert {k: len(v) for k, v in capped.items()} == {"forget": 300, "retain": 300, "real_authors": 100,
                                                       "world_facts": 117}
    assert capped["retain"] == full["retain"][:300]


def test_shard_deals_questions_like_a_distributed_sampler():
    """5 questions on 2 ranks: [0, 2, 4] and [1, 3] padded by wrapping around to [1, 3, 0]."""
    assert shard([0, 1, 2, 3, 4], 0, 2) == [0, 2, 4]
    assert shard([0, 1, 2, 3, 4], 1, 2) == [1, 3, 0]
    assert shard([7, 8], 0, 1) == [7, 8]


def test_gathered_values_come_back_in_row_order_without_padding_duplicates():
    values = PerQuestionValues()
    for index in ([4, 0], [2, 4]):  # row 4 twice, as a padded shard repeats it
        n = len(index)
        values.update(torch.tensor(index), torch.tensor(index, dtype=torch.float64), torch.zeros(n, dtype=torch.float64),
                      torch.zeros(n, 3, dtype=torch.float64), torch.ones(n, dtype=torch.float64))
    out = values.compute()
    assert out["index"].tolist() == [0, 2, 4] and out["answer_nll"].tolist() == [0.0, 2.0, 4.0]
    assert out["perturbed_nll"].shape == (3, 3)
