"""Prompt formats and tokenisation of question/answer pairs, as the reference code does it.

TOFU (``locuslab/tofu``, ``data_module.py``, ``convert_raw_data_to_model_format``; the same function
in ``licong-lin/negative-preference-optimization``, ``TOFU/data_module.py``) writes the question
part and the answer part as **one string**, tokenises it **once** (BOS added), and masks the first
``len(tokenize(question part))`` tokens; one EOS label closes the answer. The project does exactly
that for every format (:func:`tokenize_qa`), so a boundary token is whatever the reference gets:
Llama-2's ``"[/INST]The"`` gives the answer label ``The``, never the ``▁The`` (or stray ``▁``) that
tokenising ``" The"`` on its own gives with a sentencepiece tokenizer. Labels are everything after
the question part plus that EOS (docs/definitions.md, "Notation"); everything else is ``-100``. The
EOS label is written explicitly rather than derived from ``input_ids != pad``, so padding with the
EOS token never hides it. The generation prompt is the question part (TOFU's ``run_generation``
in ``evaluate_util.py`` generates from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from unlearn.errors import DataError

IGNORE_INDEX = -100
PROMPT_FORMATS = ("plain", "llama2", "chat_template", "tofu_phi")


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes the question part and how the answer part follows it.

    - ``plain``: ``"Question: {q}\\nAnswer:"`` then ``" {a}"``: only answer words are labels (the
      built-in model's format).
    - ``tofu_phi``: ``"Question: {q}\\n"`` then ``"Answer: {a}"``: TOFU's Phi-1.5 format (``phi`` in
      TOFU's ``config/model_config.yaml``), so the ``Answer:`` tokens are labels too.
    - ``llama2``: ``"[INST] {q} [/INST]"`` then ``"{a}"`` with no space: TOFU's Llama-2-chat format
      (``llama2-7b``; open-unlearning's ``Llama-2-7b-chat-hf.yaml`` warns that a space hurts).
    - ``chat_template``: the tokenizer's chat template with a generation prompt, then ``"{a}"``.

    ``chat_template_kwargs`` go to ``apply_chat_template`` (``model.chat_template_kwargs``): Llama-3
    templates print today's date unless given ``date_string``, which open-unlearning pins
    (``configs/model/Llama-3.2-*-Instruct.yaml``: ``date_string: 10 Apr 2025``). A rendered template
    holds its own BOS, so no special tokens are added to it. ``system_prompt`` (``model.system_prompt``,
    ``chat_template`` only) is a system turn before the question, as open-unlearning's
    ``template_args.system_prompt`` (``src/data/utils.py``, ``preprocess_chat_instance``: "You are a helpful
    assistant." for its Llama-3 models); the template renders it after its date lines.
    """

    name: str = "plain"
    chat_template_kwargs: dict | None = field(default=None, hash=False)
    system_prompt: str | None = None

    def __post_init__(self):
        if self.name not in PROMPT_FORMATS:
            raise ValueError(f"Unknown prompt format '{self.name}'; choose one of {', '.join(PROMPT_FORMATS)}.")
        if self.system_prompt is not None and self.name != "chat_template":
            raise ValueError(f"A system prompt needs prompt_format=chat_template; '{self.name}' has no system turn.")

    @classmethod
    def of(cls, spec: str | PromptFormat) -> PromptFormat:
        """``spec`` itself, or the format of that name (no template arguments)."""
        return spec if isinstance(spec, PromptFormat) else cls(spec)

    @classmethod
    def for_model(cls, model_cfg) -> PromptFormat:
        """The format a ``ModelConfig`` names: ``model.prompt_format``, ``chat_template_kwargs``, ``system_prompt``."""
        return cls(model_cfg.prompt_format, dict(model_cfg.chat_template_kwargs or {}) or None,
                   model_cfg.system_prompt)

    def prompt(self, question: str, tokenizer=None) -> str:
        """The question part: the prompt the answer follows, and the prompt generation starts from."""
        if self.name == "plain":
            return f"Question: {question}\nAnswer:"
        if self.name == "tofu_phi":
            return f"Question: {question}\n"
        if self.name == "llama2":
            return f"[INST] {question} [/INST]"
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt_format=chat_template needs a tokenizer that has a chat template; "
                             "use model.prompt_format=plain or llama2 for this model.")
        turns = [{"role": "system", "content": self.system_prompt}] if self.system_prompt is not None else []
        return tokenizer.apply_chat_template(turns + [{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True, **(self.chat_template_kwargs or {}))

    def answer(self, answer: str) -> str:
        """The answer part, appended to the question part as text (never tokenised on its own)."""
        if self.name == "plain":
            return f" {answer}"
        if self.name == "tofu_phi":
            return f"Answer: {answer}"
        return answer

    @property
    def template_adds_special_tokens(self) -> bool:
        # A rendered chat template already holds the BOS token.
        return self.name == "chat_template"


def _ids(tokenizer, fmt: PromptFormat, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=not fmt.template_adds_special_tokens)["input_ids"])


def prompt_ids(tokenizer, fmt: PromptFormat, question: str) -> list[int]:
    """Token ids of the question part, with the tokenizer's BOS where it uses one (the generation prompt)."""
    return _ids(tokenizer, fmt, fmt.prompt(question, tokenizer))


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def tokenize_qa(tokenizer, fmt: PromptFormat, question: str, answer: str, max_length: int) -> TokenizedExample:
    """Question part + answer part as one string, tokenised once, + EOS; cut to ``max_length``.

    TOFU's ``convert_raw_data_to_model_format`` (``locuslab/tofu``, ``data_module.py``): the first
    ``len(tokenize(question part))`` tokens are masked, the rest of the string and one EOS are labels.
    TOFU puts that EOS label on the first (attention-masked) padding position; here it is a real
    input token, which changes no logit that predicts a label. A too-long example is cut on the
    right as TOFU's ``truncation=True`` cuts it (the EOS goes first); one whose question part alone
    leaves no room for a single label raises, since it would train on nothing.
    """
    question_part = fmt.prompt(question, tokenizer)
    n_question = len(_ids(tokenizer, fmt, question_part))
    ids = _ids(tokenizer, fmt, question_part + fmt.answer(answer))
    if not ids or ids[-1] != tokenizer.eos_token_id:  # a tokenizer that appends EOS itself gets no second one
        ids.append(tokenizer.eos_token_id)
    truncated = len(ids) > max_length
    if n_question >= max_length:
        raise DataError(f"The prompt of question {question[:60]!r}... is {n_question} tokens, leaving no room "
                        f"for the answer within max_length={max_length}; raise data.max_length to at least "
                        f"{n_question + 1} (better: enough for the whole answer) or shorten the question.")
    ids = ids[:max_length]
    labels = [IGNORE_INDEX if i < n_question else token for i, token in enumerate(ids)]
    return TokenizedExample(ids, labels, truncated)


def collate(examples: list[TokenizedExample], pad_token_id: int, index: list[int] | None = None) -> dict:
    """Right-padded batch: ``input_ids``, ``attention_mask``, ``labels`` (and ``index`` when given)."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention_mask[row, :n] = 1
    batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if index is not None:
        batch["index"] = torch.tensor(index, dtype=torch.long)
    return batch


def collate_prompts(prompts: list[list[int]], pad_token_id: int) -> dict:
    """Left-padded prompt batch for generation: ``input_ids`` and ``attention_mask``.

    Padding goes on the left so that every prompt ends at the last column and generated tokens
    follow it directly; the model's position ids come from the attention mask.
    """
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids):] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask}
