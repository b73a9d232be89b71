"""The relearning split and fine-tuning, the paraphrase rows, and the attack report (unlearn.attacks)."""

import re
from collections import Counter

import pytest
import torch

from tests.helpers import QA, tiny_model, tiny_tokenizer
from unlearn.attacks import relearn as relearn_module
from unlearn.attacks.paraphrase import paraphrased_splits
from unlearn.attacks.relearn import relearn_, relearn_examples, split_forget_rows
from unlearn.attacks.report import attack_entry, format_attack, format_report, headline
from unlearn.config.loading import load_config
from unlearn.data.synthetic import BenchmarkSpec, generate_benchmark
from unlearn.errors import ConfigError, DataError
from unlearn.evaluation import load_eval_splits
from unlearn.names import FORGET_QUALITY, MODEL_UTILITY

PROB, ROUGE, TR = "forget/probability", "forget/rouge_l", "forget/truth_ratio"


@pytest.mark.parametrize("n_rows, block, fraction, attacked", [(400, 20, 0.1, 2), (200, 20, 0.1, 1), (40, 20, 0.1, 1),
                                                                (40, 10, 0.01, 1), (40, 10, 0.99, 3)])
def test_authors_are_dealt_whole_and_never_on_both_sides(n_rows, block, fraction, attacked):
    split = split_forget_rows(n_rows, fraction, seed=7, rows_per_author=block)
    assert not set(split.attack) & set(split.held_out)
    assert sorted(split.attack + split.held_out) == list(range(n_rows))
    assert len(split.attack) == attacked * block
    attack_authors = {row // block for row in split.attack}
    assert attack_authors.isdisjoint({row // block for row in split.held_out})
    assert split.attack == sorted(split.attack) and split.held_out == sorted(split.held_out)


def test_the_split_is_seeded():
    a, b = split_forget_rows(400, 0.2, seed=1), split_forget_rows(400, 0.2, seed=1)
    assert a == b
    assert any(split_forget_rows(400, 0.2, seed=s).attack != a.attack for s in range(2, 6))


def test_question_split_and_its_to_dict():
    split = split_forget_rows(5, 0.2, seed=0, unit="question")
    assert len(split.attack) == 1 and len(split.held_out) == 4
    assert split.to_dict() == {"unit": "question", "rows_per_unit": 1, "attack_rows": split.attack,
                               "held_out_rows": split.held_out}


def test_splits_that_cannot_be_made_say_how_to_fix_them():
    with pytest.raises(DataError, match="unit=question"):
        split_forget_rows(5, 0.1, seed=0, rows_per_author=5)  # one author
    with pytest.raises(DataError, match="author_rows"):
        split_forget_rows(30, 0.1, seed=0, rows_per_author=20)


def test_paraphrase_replaces_only_the_forget_questions():
    splits = generate_benchmark(BenchmarkSpec(num_authors=4, questions_per_author=3, num_general_facts=4,
                                              forget_percents=(25,)))
    eval_splits = {"forget": splits["forget25_perturbed"], "retain": splits["retain_perturbed"],
                   "real_authors": splits["real_authors_perturbed"], "world_facts": splits["world_facts_perturbed"]}
    out = paraphrased_splits(eval_splits)
    for before, after in zip(eval_splits["forget"], out["forget"]):
        assert after["question"] == before["paraphrased_question"] != before["question"]
        assert after["original_question"] == before["question"]
        assert {k: after[k] for k in ("answer", "paraphrased_answer", "perturbed_answer")} == \
            {k: before[k] for k in ("answer", "paraphrased_answer", "perturbed_answer")}
    assert all(out[name] is eval_splits[name] for name in ("retain", "real_authors", "world_facts"))


def test_rows_without_a_paraphrased_question_are_a_data_error():
    rows = [{"question": "q", "answer": "a", "paraphrased_question": "q2"}, {"question": "q", "answer": "a"}]
    with pytest.raises(DataError, match=r"row 1 has no 'paraphrased_question'.*attack.names"):
        paraphrased_splits({"forget": rows}, "forget10_perturbed")


def test_relearning_takes_exactly_the_steps_asked_and_lowers_the_loss(monkeypatch, one_thread):
    steps = []

    class Counting(relearn_module.SupervisedFinetuning):
        def training_step(self, batch, batch_idx):
            steps.append(len(batch["input_ids"]))
            return super().training_step(batch, batch_idx)

    monkeypatch.setattr(relearn_module, "SupervisedFinetuning", Counting)
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = tokenizer.eos_token  # as load_tokenizer does
    examples = relearn_examples(QA[:3], tokenizer, "plain", 64)
    model = tiny_model(tokenizer)

    def loss():
        from unlearn.data.formatting import collate

        batch = collate(examples, tokenizer.pad_token_id)
        with torch.no_grad():
            return model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")}).loss.item()

    before = loss()
    relearn_(model, examples, tokenizer.pad_token_id, steps=5, lr=1e-2, batch_size=2, seed=0, accelerator="cpu")
    assert steps == [2] * 5  # 3 examples repeated to fill 5 batches of 2
    assert loss() < before and not model.training


def test_documents_become_language_modelling_examples():
    tokenizer = tiny_tokenizer()
    examples = relearn_examples([{"text": QA[0]["question"] + " " + QA[0]["answer"]}], tokenizer, "plain", 8, "text")
    assert len(examples) > 1 and all(e.labels == e.input_ids for e in examples)


def _summary(prob, rouge, tr, fq, mu):
    return {FORGET_QUALITY: fq, MODEL_UTILITY: mu, PROB: prob, ROUGE: rouge, TR: tr}


def test_the_report_subtracts_the_retain_models_change():
    entry = attack_entry("relearned", {"steps": 2}, _summary(0.1, 0.2, 0.7, 0.01, 0.5),
                         _summary(0.6, 0.5, 0.4, 1e-5, 0.45), _summary(0.1, 0.1, 0.6, 1.0, 0.5),
                         _summary(0.3, 0.2, 0.55, 0.2, 0.5), split={"unit": "author"})
    change = entry["change"]
    assert change["model"][PROB] == pytest.approx(0.5) and change["retain"][PROB] == pytest.approx(0.2)
    assert change["beyond_retain"] == pytest.approx({PROB: 0.3, ROUGE: 0.2, TR: -0.25, MODEL_UTILITY: -0.05})
    assert FORGET_QUALITY not in change["model"]  # a p-value: reported, not differenced
    assert entry["split"] == {"unit": "author"}
    report = {"model": "runs/x/model", "retain_model": "retain", "attacks": {"relearn": entry}}
    assert headline(report)["attack/relearn/beyond_retain/forget/probability"] == pytest.approx(0.3)
    assert headline(report)["attack/relearn/forget/forget_quality"] == 1e-5
    text = format_report(report)
    assert "| metric | model before | model after | change | retain before | retain after | retain change | " \
           "change beyond retain |" in text
    assert "| forget probability | 0.100 | 0.600 | +0.500 | 0.100 | 0.300 | +0.200 | +0.300 |" in text
    assert "| forget quality | 0.01 | 1e-05 | — |" in text


def test_without_a_retain_model_the_baseline_is_unavailable():
    entry = attack_entry("rounded", {}, _summary(0.1, 0.2, 0.7, None, 0.5), _summary(0.2, 0.2, 0.7, None, 0.5),
                         None, None)
    assert entry["retain"] is None and entry["change"]["beyond_retain"] is None
    assert entry["change"]["model"][PROB] == pytest.approx(0.1)
    text = format_attack("quantize", entry)
    assert "| metric | model before | model after | change |" in text and "No retain model" in text


@pytest.mark.parametrize("override, message", [
    ("attack.name=prune", "attack.name must be one of"),
    ("attack.names=[relearn,relearn]", "distinct attacks"),
    ("attack.relearn.fraction=1.0", "attack.relearn.fraction must be between 0 and 1"),
    ("attack.relearn.unit=paragraph", "attack.relearn.unit must be author or question"),
    ("attack.quantize.bits=16", "attack.quantize.bits must be between 2 and 8"),
    ("attack.relearn.lr=0", "attack.relearn.lr must be > 0")])
def test_bad_attack_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config([], [override])


def test_names_and_name_exclude_each_other_but_names_alone_is_fine():
    with pytest.raises(ConfigError, match="set only one"):
        load_config([], ["attack.name=relearn", "attack.names=[quantize]"])
    from unlearn.attacks.job import attack_names

    assert attack_names(load_config([], ["attack.names=[quantize,paraphrase]"]).attack) == ["quantize", "paraphrase"]
    assert attack_names(load_config([], []).attack) == ["relearn", "quantize", "paraphrase"]
    assert attack_names(load_config([], ["attack.name=quantize"]).attack) == ["quantize"]


def test_real_tofu_forget_rows_paraphrase_and_split_by_author(tofu_dir):
    splits = load_eval_splits(tofu_dir, "forget05")
    forget = paraphrased_splits(splits)["forget"]
    assert len(forget) == 200 and all(r["question"] != r["original_question"] for r in forget)
    split = split_forget_rows(len(forget), 0.1, seed=1001)  # 10 authors of 20: the attacker gets one
    assert len(split.attack) == 20 and len(split.held_out) == 180
    # An author's 20 rows are one block: the name most questions of the attacker's rows use is in no held-out row.
    names = Counter(n for i in split.attack
                    for n in set(re.findall(r"[A-Z][\w-]+ [A-Z][\w-]+", forget[i]["original_question"])))
    name, count = names.most_common(1)[0]
    assert count >= 8
    assert not any(name in forget[i]["original_question"] for i in split.held_out)
