"""Prompt formats and tokenisation of question/answer pairs.

The prompt and the answer are tokenised separately and concatenated, so the boundary between
masked prompt tokens and answer labels is exact for every tokenizer. Labels cover the answer
tokens and one closing EOS (docs/definitions.md, "Notation"); everything else is ``-100``. The EOS label is
written explicitly rather than derived from ``input_ids != pad``, so padding with the EOS token
never hides the real EOS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unlearn.errors import DataError

IGNORE_INDEX = -100
PROMPT_FORMATS = ("plain", "llama2", "chat_template")


@dataclass(frozen=True)
class PromptFormat:
    """How a question becomes a prompt and how the answer follows it.

    ``plain``: ``"Question: {q}\\nAnswer:"`` then ``" {a}"`` (TOFU's Phi-1.5 format, with the
    ``Answer:`` tag in the prompt so that only answer words are labels).
    ``llama2``: ``"[INST] {q} [/INST]"`` then ``" {a}"`` (TOFU's Llama-2-chat format).
    ``chat_template``: the tokenizer's own chat template with a generation prompt, then ``{a}``.
    """

    name: str = "plain"

    def __post_init__(self):
        if self.name not in PROMPT_FORMATS:
            raise ValueError(f"Unknown prompt format '{self.name}'; choose one of {', '.join(PROMPT_FORMATS)}.")

    def prompt(self, question: str, tokenizer=None) -> str:
        if self.name == "plain":
            return f"Question: {question}\nAnswer:"
        if self.name == "llama2":
            return f"[INST] {question} [/INST]"
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt_format=chat_template needs a tokenizer that has a chat template; "
                             "use model.prompt_format=plain or llama2 for this model.")
        return tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                             tokenize=False, add_generation_prompt=True)

    def answer(self, answer: str) -> str:
        return answer if self.name == "chat_template" else f" {answer}"

    @property
    def template_adds_special_tokens(self) -> bool:
        # A rendered chat template already holds the BOS token.
        return self.name == "chat_template"


def prompt_ids(tokenizer, fmt: PromptFormat, question: str) -> list[int]:
    """Token ids of the prompt, with the tokenizer's BOS where it uses one."""
    return tokenizer(fmt.prompt(question, tokenizer),
                     add_special_tokens=not fmt.template_adds_special_tokens)["input_ids"]


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


def tokenize_qa(tokenizer, fmt: PromptFormat, question: str, answer: str, max_length: int) -> TokenizedExample:
    """Prompt + answer + EOS, labels on the answer and EOS only, cut to ``max_length``.

    A too-long example keeps its prompt and as much of the answer as fits; an example whose
    prompt alone leaves no room for a single answer token raises, since it would train on nothing.
    """
    prompt = prompt_ids(tokenizer, fmt, question)
    target = tokenizer(fmt.answer(answer), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    truncated = len(prompt) + len(target) > max_length
    if truncated:
        room = max_length - len(prompt)
        if room < 1:
            raise DataError(f"The prompt of question {question[:60]!r}... is {len(prompt)} tokens, leaving no room "
                            f"for the answer within max_length={max_length}; raise data.max_length to at least "
                            f"{len(prompt) + 1} (better: enough for the whole answer) or shorten the question.")
        target = target[:room]
    return TokenizedExample(prompt + target, [IGNORE_INDEX] * len(prompt) + target, truncated)


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
