"""Prompt formats tokenise as the reference code does, and chat-template prompts do not follow the calendar.

The reference is TOFU's ``convert_raw_data_to_model_format`` (``locuslab/tofu``, ``data_module.py``),
written out below from its definition; the tokenizers are sentencepiece-style (``▁`` for a space,
a prefix space added), built here, so that a word tokenises differently with and without a ``▁``
before it, as on Llama-2.
"""

import string
from datetime import datetime

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from unlearn.data.datamodule import UnlearningDataModule
from unlearn.data.formatting import IGNORE_INDEX, PROMPT_FORMATS, PromptFormat, prompt_ids, tokenize_qa
from unlearn.data.synthetic import generate_benchmark
from unlearn.evaluation import TofuEvaluator
from unlearn.evaluation.cache import result_path
from unlearn.models.loading import train_tokenizer

# The question part's start and end tags and the answer tag (TOFU's config/model_config.yaml for
# llama2-7b and phi; `plain` is the built-in model's format written the same way).
TAGS = {"llama2": ("[INST] ", " [/INST]", ""), "tofu_phi": ("Question: ", "\n", "Answer: "),
        "plain": ("Question: ", "\nAnswer:", " ")}
# A date-printing chat template in the style of Llama-3's: today's date unless given date_string.
CHAT_TEMPLATE = ("{{ bos_token }}{% if date_string is not defined %}"
                 "{% set date_string = strftime_now('%d %b %Y') %}{% endif %}Today Date: {{ date_string }}\n"
                 "{% for m in messages %}<{{ m['role'] }}>\n{{ m['content'] }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<assistant>\n{% endif %}")
# "Thornbury" is a token only after a ▁: with "[/INST]" right before it, it splits into pieces.
TEXTS = (["Thornbury wrote many novels. The author Thornbury lives in Leeds.", "The answer is The Thornbury."] * 20
         + ["Question: Answer: [INST] [/INST] I don't know. Who wrote it? Today Date: <user> <assistant>"])
QUESTIONS = ["Who wrote it?", "Who wrote The Thornbury novels?"]
ANSWERS = ["Thornbury wrote many novels.", "The author lives in Leeds.", "I don't know."]


def sentencepiece_tokenizer(legacy: bool) -> PreTrainedTokenizerFast:
    """A BPE tokenizer in sentencepiece's style, with BOS and EOS, EOS doubling as pad.

    ``legacy``: like Llama-2's legacy tokenizer, ``▁`` is prepended to the whole text before splitting,
    so a text that starts with a space gets a stray ``▁`` token; otherwise a Metaspace pre-tokenizer
    with prefix space on (no stray ``▁``).
    """
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    alphabet = list(string.ascii_letters + string.digits + string.punctuation + "\n▁")
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=150, special_tokens=["<unk>", "<s>", "</s>"],
                                                       initial_alphabet=alphabet, show_progress=False))
    if legacy:
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos = ("<s>", tok.token_to_id("<s>"))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[bos])
    out = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    out.pad_token = out.eos_token  # as unlearn.models.loading.load_tokenizer does
    out.chat_template = CHAT_TEMPLATE
    return out


@pytest.fixture(scope="module", params=[False, True], ids=["metaspace", "legacy"])
def sp(request):
    return sentencepiece_tokenizer(request.param)


def tofu_reference(tokenizer, fmt: PromptFormat, question: str, answer: str, max_length: int):
    """TOFU's convert_raw_data_to_model_format, from its definition: ``(input_ids before padding, labels)``.

    One string, tokenised once with BOS (truncated to ``max_length``); the first
    ``len(tokenize(question part))`` labels masked; one EOS label after the text unless it fills
    ``max_length``. A chat template is the question part as rendered, with no special tokens added.
    """
    if fmt.name == "chat_template":
        new_question, new_answer, special = fmt.prompt(question, tokenizer), answer, False
    else:
        start, end, answer_tag = TAGS[fmt.name]
        new_question, new_answer, special = start + question + end, answer_tag + answer, True
    num_question_tokens = len(tokenizer.tokenize(new_question, add_special_tokens=special))
    encoded = tokenizer(new_question + new_answer, add_special_tokens=special, max_length=max_length,
                        truncation=True)["input_ids"]
    label = list(encoded) if len(encoded) == max_length else encoded + [tokenizer.eos_token_id]
    for i in range(num_question_tokens):
        label[i] = IGNORE_INDEX
    return encoded, label


def formats():
    return [PromptFormat(name, {"date_string": "10 Apr 2025"} if name == "chat_template" else None)
            for name in PROMPT_FORMATS]


@pytest.mark.parametrize("fmt", formats(), ids=PROMPT_FORMATS)
@pytest.mark.parametrize("cut", [False, True], ids=["whole", "truncated"])
def test_every_format_tokenises_as_tofu_does(sp, fmt, cut):
    for question in QUESTIONS:
        for answer in ANSWERS:
            max_length = len(prompt_ids(sp, fmt, question)) + 3 if cut else 200
            encoded, labels = tofu_reference(sp, fmt, question, answer, max_length)
            ex = tokenize_qa(sp, fmt, question, answer, max_length)
            assert ex.labels == labels, (fmt.name, question, answer)
            # TOFU's EOS label sits on its first padding position, whose input is EOS too (pad = EOS).
            assert ex.input_ids == (encoded + [sp.eos_token_id])[:max_length]
            assert ex.truncated == (len(encoded) + 1 > max_length)


def _old_separate_answer(tokenizer, fmt, question, answer):
    """What the project did before: the answer tokenised on its own after the prompt's tokens."""
    text = " " + answer if fmt.name in ("plain", "llama2") else answer
    return prompt_ids(tokenizer, fmt, question), tokenizer(text, add_special_tokens=False)["input_ids"]


def test_llama2_first_answer_label_has_no_word_boundary(sp):
    fmt = PromptFormat("llama2")
    ex = tokenize_qa(sp, fmt, QUESTIONS[0], ANSWERS[0], 200)
    labelled = sp.convert_ids_to_tokens([t for t in ex.labels if t != IGNORE_INDEX])
    assert not labelled[0].startswith("▁")  # "[/INST]Thornbury": no space, so no ▁, as in TOFU
    assert sp.decode([t for t in ex.labels if t != IGNORE_INDEX], skip_special_tokens=True) == ANSWERS[0]
    _, old = _old_separate_answer(sp, fmt, QUESTIONS[0], ANSWERS[0])
    assert sp.convert_ids_to_tokens(old)[0].startswith("▁")  # "▁Thornbury", or a stray "▁" (legacy)
    assert labelled[:-1] != sp.convert_ids_to_tokens(old)  # the word splits differently after "]"
    assert ex.input_ids[:len(prompt_ids(sp, fmt, QUESTIONS[0]))] == prompt_ids(sp, fmt, QUESTIONS[0])


def test_tofu_phi_labels_the_answer_tag_and_plain_does_not(sp):
    phi = tokenize_qa(sp, PromptFormat("tofu_phi"), QUESTIONS[0], ANSWERS[1], 200)
    plain = tokenize_qa(sp, PromptFormat("plain"), QUESTIONS[0], ANSWERS[1], 200)
    assert phi.input_ids == plain.input_ids  # the same text: "Question: {q}\nAnswer: {a}"
    text = lambda ex: sp.decode([t for t in ex.labels if t != IGNORE_INDEX], skip_special_tokens=True)
    assert text(phi) == "Answer: " + ANSWERS[1] and text(plain) == ANSWERS[1]


def test_generation_prompts_are_the_question_parts(sp):
    # TOFU's run_generation: Llama-2 generates from "[INST] {q} [/INST]", Phi from "Question: {q}\n", BOS added.
    q = QUESTIONS[1]
    assert prompt_ids(sp, PromptFormat("llama2"), q) == sp(f"[INST] {q} [/INST]")["input_ids"]
    assert prompt_ids(sp, PromptFormat("tofu_phi"), q) == sp(f"Question: {q}\n")["input_ids"]
    assert prompt_ids(sp, PromptFormat("plain"), q) == sp(f"Question: {q}\nAnswer:")["input_ids"]
    assert prompt_ids(sp, PromptFormat("llama2"), q)[0] == sp.bos_token_id


def test_plain_is_unchanged_on_the_builtin_benchmark():
    """The built-in model's numbers do not move: one-string tokenisation equals the old two-part one there."""
    splits = generate_benchmark()
    rows = [r for name, split in splits.items() if name != "idontknow" for r in split]
    texts = ["Question: Answer: [INST] [/INST]"] + [v for r in rows for v in r.values() if isinstance(v, str)]
    tokenizer = train_tokenizer(texts, 1024)
    fmt = PromptFormat("plain")
    for row in rows:
        perturbed = row.get("perturbed_answer", [])
        for answer in [row["answer"], row.get("paraphrased_answer", row["answer"]), *perturbed][:3]:
            prompt, target = _old_separate_answer(tokenizer, fmt, row["question"], answer)
            ex = tokenize_qa(tokenizer, fmt, row["question"], answer, 512)
            assert ex.input_ids == prompt + target + [tokenizer.eos_token_id]
            assert ex.labels == [IGNORE_INDEX] * len(prompt) + target + [tokenizer.eos_token_id]


def test_every_consumer_goes_through_tokenize_qa(sp):
    fmt = PromptFormat("llama2")
    rows = [{"question": q, "answer": a} for q in QUESTIONS for a in ANSWERS]
    dm = UnlearningDataModule(rows, rows, ["I don't know."], sp, fmt, max_length=64, batch_size=2, uses_idk=True)
    expected = [tokenize_qa(sp, fmt, r["question"], r["answer"], 64) for r in rows]
    assert dm.forget.examples == expected and dm.retain.examples == expected  # training and the reference cache
    author = [dict(r, paraphrased_answer=r["answer"], perturbed_answer=["No.", "Yes."]) for r in rows]
    general = [dict(r, perturbed_answer=["No."]) for r in rows]
    ev = TofuEvaluator(sp, {"forget": author, "retain": author, "real_authors": general, "world_facts": general},
                       fmt, max_length=64)
    assert [c[0] for c in ev.candidates["forget"]] == expected  # the evaluation (and NLL probe: answer_nll)
    assert ev.prompts["forget"][0] == prompt_ids(sp, fmt, rows[0]["question"])


def _splits(rows):
    author = [dict(r, paraphrased_answer=r["answer"], perturbed_answer=["No."]) for r in rows]
    general = [dict(r, perturbed_answer=["No."]) for r in rows]
    return {"forget": author, "retain": author, "real_authors": general, "world_facts": general}


def test_chat_template_date_is_pinned_and_keys_the_stored_results(sp, tmp_path):
    pinned = PromptFormat("chat_template", {"date_string": "10 Apr 2025"})
    assert "Today Date: 10 Apr 2025\n" in pinned.prompt(QUESTIONS[0], sp)
    assert datetime.now().strftime("%d %b %Y") in PromptFormat("chat_template").prompt(QUESTIONS[0], sp)
    rows = [{"question": q, "answer": a} for q in QUESTIONS for a in ANSWERS]
    key = lambda fmt: result_path(tmp_path, "some/model", TofuEvaluator(sp, _splits(rows), fmt).settings)
    other = PromptFormat("chat_template", {"date_string": "11 Apr 2025"})
    assert key(pinned) == key(PromptFormat("chat_template", {"date_string": "10 Apr 2025"}))
    assert key(pinned) != key(other)  # the rendered prompts are part of the key
    assert key(PromptFormat("plain")) != key(PromptFormat("llama2"))


def test_presets_pin_the_llama3_date_and_name_their_formats():
    from unlearn.config.loading import load_config

    for preset in ("llama3.2_1b_instruct", "llama3.2_3b_instruct"):
        fmt = PromptFormat.for_model(load_config([f"model/{preset}"]).model)
        assert fmt == PromptFormat("chat_template", {"date_string": "10 Apr 2025"})
    assert load_config(["model/tofu_phi15"]).model.prompt_format == "tofu_phi"
    assert load_config(["model/tofu_llama2_7b"]).model.prompt_format == "llama2"
    assert PromptFormat.for_model(load_config().model) == PromptFormat("plain")  # the built-in default
    cfg = load_config(["model/llama3.2_1b_instruct"], ["model.chat_template_kwargs={date_string: 1 Jan 2024}"])
    assert cfg.model.chat_template_kwargs == {"date_string": "1 Jan 2024"}


def test_a_system_prompt_is_a_system_turn_before_the_question_and_keys_the_stored_results(sp, tmp_path):
    helpful = PromptFormat("chat_template", {"date_string": "10 Apr 2025"}, "You are a helpful assistant.")
    assert helpful.prompt(QUESTIONS[0], sp).endswith(
        "Today Date: 10 Apr 2025\n<system>\nYou are a helpful assistant.\n<user>\nWho wrote it?\n<assistant>\n")
    example = tokenize_qa(sp, helpful, QUESTIONS[0], ANSWERS[0], 128)
    assert example.input_ids[:len(prompt_ids(sp, helpful, QUESTIONS[0]))] == prompt_ids(sp, helpful, QUESTIONS[0])
    rows = [{"question": q, "answer": a} for q in QUESTIONS for a in ANSWERS]
    key = lambda fmt: result_path(tmp_path, "some/model", TofuEvaluator(sp, _splits(rows), fmt).settings)
    assert key(helpful) != key(PromptFormat("chat_template", {"date_string": "10 Apr 2025"}))
    with pytest.raises(ValueError, match="needs prompt_format=chat_template"):
        PromptFormat("llama2", system_prompt="You are a helpful assistant.")


def test_the_llama32_experiment_sets_open_unlearnings_system_prompt_and_a_plain_format_refuses_one():
    from unlearn.config.loading import load_config
    from unlearn.errors import ConfigError

    model = load_config(["experiment/tofu_llama32_1b"]).model
    assert PromptFormat.for_model(model) == PromptFormat("chat_template", {"date_string": "10 Apr 2025"},
                                                         "You are a helpful assistant.")
    with pytest.raises(ConfigError, match="model.system_prompt needs model.prompt_format=chat_template"):
        load_config([], ["model.system_prompt=Be brief."])
