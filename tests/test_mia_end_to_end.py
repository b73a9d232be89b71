"""Membership inference end to end: a model trained on the forget authors tells them from unseen ones; one trained
without them cannot.

Models are trained here on a small built-in-format benchmark whose tokenizer has seen every text,
holdout authors included. (The default built-in tokenizer has not seen the holdout authors, which
lets even the retain model tell them apart: docs/evaluation.md, "Privacy".)
"""

import pytest

from unlearn.config.schema import FinetuneConfig
from unlearn.data.formatting import PromptFormat, tokenize_qa
from unlearn.data.synthetic import BenchmarkSpec, finetune_rows, generate_benchmark, generate_holdout
from unlearn.evaluation.membership import MembershipProbe
from unlearn.models.loading import build_tiny_llama, train_tokenizer
from unlearn.names import MIA_ATTACKS
from unlearn.training.sft import train_on_rows

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
SPEC = BenchmarkSpec(num_authors=16, questions_per_author=5, num_general_facts=10, forget_percents=(25,))


@pytest.fixture(scope="module")
def aucs():
    splits = {**generate_benchmark(SPEC), **generate_holdout(SPEC)}
    forget, holdout = splits["forget25"], splits["holdout25"]
    texts = [f"{r['question']} {r['answer']}" for name, rows in splits.items() if name != "idontknow"
             for r in rows if isinstance(r, dict)]
    tokenizer = train_tokenizer(texts, 512)
    tokenizer.pad_token = tokenizer.eos_token
    fmt = PromptFormat("plain")
    member = [tokenize_qa(tokenizer, fmt, r["question"], r["answer"], 64) for r in forget]
    nonmember = [tokenize_qa(tokenizer, fmt, r["question"], r["answer"], 64) for r in holdout]
    probe = MembershipProbe(tokenizer, member, nonmember, MIA_ATTACKS, 0.4, batch_size=32)
    settings = FinetuneConfig(epochs=30, lr=3e-3, batch_size=16)
    out = {}
    for role, split in (("target", "full"), ("retain", "retain75")):
        model = build_tiny_llama(tokenizer, 64, 2, 2, 128, seed=0)
        train_on_rows(model, tokenizer, finetune_rows(splits, split), fmt, 64, settings, accelerator="cpu",
                      progress_bar=False, desc=role)
        out[role] = probe(model, 0, 1).aucs()
    return out


@pytest.mark.parametrize("attack", ["loss", "zlib", "min_k", "min_k_plus_plus", "gradnorm"])
def test_the_target_model_gives_its_forget_set_away(aucs, attack):
    assert aucs["target"][attack] > 0.9, aucs


@pytest.mark.parametrize("attack", ["loss", "min_k"])
def test_the_retain_model_cannot_tell_forget_from_holdout(aucs, attack):
    assert 0.25 < aucs["retain"][attack] < 0.75, aucs
