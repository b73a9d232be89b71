"""The batched MUSE evaluator: the same numbers as a per-example loop, as MUSE's own steps, and across shards."""

import numpy as np
import pytest
import torch

from tests.helpers import QA, tiny_tokenizer
from tests.test_evaluation import scrambled_model
from unlearn.errors import DataError
from unlearn.evaluation.generation import greedy_generate
from unlearn.evaluation.mia import MIA_ATTACKS
from unlearn.evaluation.muse import MuseEvaluator
from unlearn.evaluation.muse_metrics import cut_at_stop_words, knowmem_prompt, muse_min_k_score, verbmem_reference
from unlearn.evaluation.naive_muse import naive_muse_evaluate
from unlearn.names import PRIVLEAK, mia_key

pytestmark = pytest.mark.usefixtures("one_thread")
SETTINGS = {"verbmem_max_new_tokens": 8, "knowmem_max_new_tokens": 6}


@pytest.fixture(scope="module")
def tokenizer():
    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token
    return tok


def muse_sets():
    return {"verbmem_forget": [{"prompt": r["question"], "gt": r["answer"] * 2} for r in QA[:4]],
            "knowmem_forget_qa": QA[4:7], "knowmem_forget_qa_icl": QA[7:9],
            "knowmem_retain_qa": QA[9:11], "knowmem_retain_qa_icl": QA[11:12],
            "privleak_forget": [{"text": r["question"] + " " + r["answer"] * (1 + i % 3)}
                                for i, r in enumerate(QA[12:17])],
            "privleak_holdout": [{"text": r["answer"] + " " + r["question"]} for r in QA[17:23]]}


def assert_same(a, b, rtol=1e-5):
    assert a.samples() == b.samples()
    for split in ("forget", "holdout"):
        assert a.privleak_scores[split].keys() == b.privleak_scores[split].keys()
        for key, values in a.privleak_scores[split].items():
            np.testing.assert_allclose(values, b.privleak_scores[split][key], rtol=rtol, err_msg=f"{split} {key}")
    np.testing.assert_allclose(a.exact_memorization, b.exact_memorization)
    np.testing.assert_allclose(a.extraction_strength, b.extraction_strength)
    summary_b = b.summary()
    for key, value in a.summary().items():
        assert value == summary_b[key] if value is None else value == pytest.approx(summary_b[key], rel=rtol), key


def test_batched_evaluator_matches_the_per_example_loop(tokenizer):
    model = scrambled_model(tokenizer, seed=1)
    batched = MuseEvaluator(tokenizer, muse_sets(), max_length=48, batch_size=3, **SETTINGS)(model)
    naive = naive_muse_evaluate(model, tokenizer, muse_sets(), max_length=48, **SETTINGS)
    assert_same(batched, naive)
    assert set(batched.privleak_scores["forget"]) == {"muse_min_k", "loss", "zlib", "min_k", "min_k_plus_plus",
                                                      "gradnorm"}
    assert all(batched.summary()[mia_key(a)] is not None for a in MIA_ATTACKS if a != "reference")
    assert len(set(batched.generations["verbmem_forget"].generation)) > 1  # the check means something


def test_evaluator_follows_muses_own_steps(tokenizer):
    """Each number as MUSE's code gets it: one prompt, one text at a time, its prompts and cuts."""
    model = scrambled_model(tokenizer, seed=2)
    sets = muse_sets()
    result = MuseEvaluator(tokenizer, sets, max_length=200, batch_size=4, **SETTINGS)(model)
    verbmem = result.generations["verbmem_forget"]
    for i, row in enumerate(sets["verbmem_forget"]):
        prompt = tokenizer(row["prompt"])["input_ids"]  # with BOS, as MUSE's tokenizer(prompt)
        assert verbmem.generation[i] == greedy_generate(model, tokenizer, [prompt], 8, batch_size=1)[0]
        assert verbmem.truth[i] == verbmem_reference(tokenizer, row["gt"], 8)
    knowmem = result.generations["knowmem_forget"]
    for i, row in enumerate(sets["knowmem_forget_qa"]):
        prompt = tokenizer(knowmem_prompt(row["question"], sets["knowmem_forget_qa_icl"]))["input_ids"]
        text = greedy_generate(model, tokenizer, [prompt], 6, batch_size=1)[0]
        assert knowmem.generation[i] == cut_at_stop_words(text) and knowmem.truth[i] == row["answer"]
    for split in ("forget", "holdout"):
        for i, row in enumerate(sets[f"privleak_{split}"]):
            ids = torch.tensor([tokenizer(row["text"])["input_ids"]])  # MUSE's compute_ppl: every token after BOS
            with torch.no_grad():
                log_p = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
            logprob = log_p[torch.arange(ids.size(1) - 1), ids[0, 1:]].numpy()
            expected = -np.mean(np.sort(logprob)[:int(len(logprob) * 0.4)])
            assert result.privleak_scores[split]["muse_min_k"][i] == pytest.approx(expected, rel=1e-5)
            assert muse_min_k_score(logprob) == pytest.approx(expected, rel=1e-6)
            assert result.privleak_scores[split]["loss"][i] == pytest.approx(-logprob.mean(), rel=1e-5)
    assert result.summary()[PRIVLEAK] is None and result.privleak_reason
    retain = MuseEvaluator(tokenizer, sets, max_length=200, batch_size=4, **SETTINGS)(scrambled_model(tokenizer, 3))
    result.compare_with_retain(retain)
    expected = (result.min_k_auc - retain.min_k_auc) / retain.min_k_auc * 100
    assert result.summary()[PRIVLEAK] == pytest.approx(expected) and result.summary()[mia_key("reference")] is not None


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_assemble_to_the_single_process_result(tokenizer, world_size):
    """Each rank's share, gathered, gives what one process gets (3 ranks: shards padded by wrapping round)."""
    model = scrambled_model(tokenizer, seed=4)
    evaluator = MuseEvaluator(tokenizer, muse_sets(), max_length=48, batch_size=2, mia_attacks=("loss", "min_k"),
                              **SETTINGS)
    single = evaluator(model)
    parts = [evaluator.evaluate_shard(model, rank, world_size) for rank in range(world_size)]
    n_texts = len(muse_sets()["privleak_forget"]) + len(muse_sets()["privleak_holdout"]) + 4
    for part in parts:  # every rank did only its share of the texts
        scored = sum(len(part.get(f"{name}_scores", {})) for name in ("privleak_forget", "privleak_holdout",
                                                                      "verbmem_forget"))
        assert scored <= -(-n_texts // world_size)
    assert_same(evaluator.assemble(parts), single)
    assert set(single.privleak_scores["forget"]) == {"muse_min_k", "loss", "min_k"}
    assert [k for k in single.summary() if k.startswith("privacy/mia_")] == [mia_key("loss"), mia_key("min_k")]


def test_settings_key_the_tokens_and_lengths(tokenizer):
    a = MuseEvaluator(tokenizer, muse_sets(), max_length=48, **SETTINGS)
    assert a.settings == MuseEvaluator(tokenizer, muse_sets(), max_length=48, **SETTINGS).settings
    assert a.settings["rows"]["privleak_holdout"] == 6 and a.settings["benchmark"] == "muse"
    assert a.settings != MuseEvaluator(tokenizer, muse_sets(), max_length=20, **SETTINGS).settings
    changed = muse_sets()
    changed["knowmem_forget_qa_icl"] = QA[7:8]
    assert a.settings["prompts"] != MuseEvaluator(tokenizer, changed, max_length=48, **SETTINGS).settings["prompts"]


def test_missing_or_empty_sets_are_refused(tokenizer):
    sets = muse_sets()
    del sets["privleak_holdout"]
    with pytest.raises(DataError, match="privleak_holdout"):
        MuseEvaluator(tokenizer, sets, max_length=48)
    with pytest.raises(DataError, match="empty"):
        MuseEvaluator(tokenizer, {**muse_sets(), "privleak_forget": []}, max_length=48)
    with pytest.raises(ValueError, match="unknown"):
        MuseEvaluator(tokenizer, muse_sets(), max_length=48, mia_attacks=("recall",))


def test_empty_knowmem_sets_give_none(tokenizer):
    model = scrambled_model(tokenizer, seed=5)
    sets = {**muse_sets(), "knowmem_retain_qa": [], "knowmem_retain_qa_icl": []}
    result = MuseEvaluator(tokenizer, sets, max_length=48, batch_size=4, mia_attacks=(), **SETTINGS)(model)
    assert result.summary()["utility/knowmem_retain"] is None
    assert result.samples()["knowmem_retain"] == []
