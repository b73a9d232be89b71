"""The unlearning data module: forget examples paired with retain and "I don't know" examples.

Each training item is one forget example plus, when the loss uses them, a retain example and the
forget question answered with a refusal. SPEC allows any pairing that is reproducible from the
seed (the reference code derives the retain item from the forget index, open-unlearning draws it
at random). A fixed pairing would only ever show the retain term ``len(forget)`` retain examples,
and the rest of the retain set drifts; so forget item ``i`` in epoch ``e`` takes the retain
example at position ``e * len(forget) + i`` of one seeded permutation of the retain set, which
walks through every retain example before any repeats. The epoch comes from ``set_epoch``, which
the training module calls at the start of each epoch.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import lightning as L
from torch.utils.data import DataLoader, Dataset

from unlearn.data.formatting import PromptFormat, TokenizedExample, collate, tokenize_qa

log = logging.getLogger(__name__)


@dataclass
class QASplit:
    """A tokenised split with its rows; ``truncated`` counts examples cut to ``max_length``."""

    rows: list[dict]
    examples: list[TokenizedExample]

    @property
    def truncated(self) -> int:
        return sum(e.truncated for e in self.examples)


def tokenize_split(rows: list[dict], tokenizer, fmt: PromptFormat, max_length: int,
                   answer_key: str = "answer") -> QASplit:
    return QASplit(rows, [tokenize_qa(tokenizer, fmt, r["question"], r[answer_key], max_length) for r in rows])


class UnlearningDataset(Dataset):
    """Forget item ``i`` with its paired retain item and IDK answer, as token ids."""

    def __init__(self, forget: QASplit, retain: QASplit | None, idk: QASplit | None, seed: int):
        self.forget, self.retain, self.idk = forget, retain, idk
        self.retain_order = list(range(len(retain.examples))) if retain else []
        random.Random(seed).shuffle(self.retain_order)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def retain_index(self, i: int) -> int:
        return self.retain_order[(self.epoch * len(self) + i) % len(self.retain_order)]

    def __len__(self) -> int:
        return len(self.forget.examples)

    def __getitem__(self, i: int) -> dict:
        item = {"index": i, "forget": self.forget.examples[i]}
        if self.retain is not None:
            item["retain_index"] = self.retain_index(i)
            item["retain"] = self.retain.examples[item["retain_index"]]
        if self.idk is not None:
            item["idk"] = self.idk.examples[i]
        return item


class UnlearningCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict]) -> dict:
        batch = {"forget": collate([it["forget"] for it in items], self.pad_token_id, [it["index"] for it in items])}
        if "retain" in items[0]:
            batch["retain"] = collate([it["retain"] for it in items], self.pad_token_id,
                                      [it["retain_index"] for it in items])
        if "idk" in items[0]:
            batch["idk"] = collate([it["idk"] for it in items], self.pad_token_id, [it["index"] for it in items])
        return batch


class UnlearningDataModule(L.LightningDataModule):
    """Serves forget/retain/IDK batches for a loss strategy.

    Args:
        forget_rows, retain_rows: question/answer rows.
        idk_answers: refusal sentences; forget question ``i`` gets one drawn from ``seed``.
        tokenizer: a Hugging Face tokenizer with ``eos_token_id`` and ``pad_token_id`` set.
        uses_retain, uses_idk: the loss strategy's flags; unused parts are not built.
    """

    def __init__(self, forget_rows, retain_rows, idk_answers, tokenizer, prompt_format: str = "plain",
                 max_length: int = 128, batch_size: int = 8, num_workers: int = 0, seed: int = 1001,
                 uses_retain: bool = True, uses_idk: bool = False):
        super().__init__()
        self.tokenizer = tokenizer
        self.fmt = PromptFormat(prompt_format)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.forget = tokenize_split(forget_rows, tokenizer, self.fmt, max_length)
        self.retain = tokenize_split(retain_rows, tokenizer, self.fmt, max_length) if uses_retain else None
        self.idk = None
        if uses_idk:
            rng = random.Random(seed + 1)
            idk_rows = [{"question": r["question"], "answer": rng.choice(idk_answers)} for r in forget_rows]
            self.idk = tokenize_split(idk_rows, tokenizer, self.fmt, max_length)
        for name, split in (("forget", self.forget), ("retain", self.retain)):
            if split is not None and split.truncated:
                log.warning("%d of %d %s examples are longer than data.max_length=%d and were cut "
                            "(each keeps at least one answer token); raise data.max_length to keep them whole.",
                            split.truncated, len(split.examples), name, max_length)
        self.dataset = UnlearningDataset(self.forget, self.retain, self.idk, seed)

    def train_dataloader(self) -> DataLoader:
        # Lightning swaps in a DistributedSampler under DDP and seeds the shuffle from the global seed.
        return DataLoader(self.dataset, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          collate_fn=UnlearningCollator(self.tokenizer.pad_token_id))
