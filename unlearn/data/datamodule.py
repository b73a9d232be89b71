"""The unlearning data module: forget examples paired with retain and "I don't know" examples.

Each training item is one forget example plus, when the loss uses them, a retain example and the
forget question answered with a refusal. Any pairing that is reproducible from the seed
will do (docs/definitions.md, "Losses"): the reference code derives the retain item from the
forget index, open-unlearning draws it at random. A fixed pairing would only ever show the
retain term ``len(forget)`` retain examples, and the rest of the retain set drifts; so forget
item ``i`` in epoch ``e`` takes the retain example at position ``e * len(forget) + i`` of one
seeded permutation of the retain set, which walks through every retain example before any
repeats. In training the epoch travels with each index from the sampler
(``unlearn.data.sampling``); ``set_epoch`` serves direct indexing.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from unlearn.data.formatting import PromptFormat, TokenizedExample, collate, tokenize_qa
from unlearn.data.sampling import EpochSampler, ResumableDataLoader
from unlearn.errors import DataError

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
                   answer_key: str = "answer", name: str = "data") -> QASplit:
    examples = []
    for number, row in enumerate(rows):
        try:
            examples.append(tokenize_qa(tokenizer, fmt, row["question"], row[answer_key], max_length))
        except ValueError as err:
            raise DataError(f"{name} split, row {number}: {err}") from err
    return QASplit(rows, examples)


class UnlearningDataset(Dataset):
    """Forget item ``i`` with its paired retain item and IDK answer, as token ids."""

    def __init__(self, forget: QASplit, retain: QASplit | None, idk: QASplit | None, seed: int):
        self.forget, self.retain, self.idk = forget, retain, idk
        self.retain_order = list(range(len(retain.examples))) if retain else []
        random.Random(seed).shuffle(self.retain_order)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def retain_index(self, i: int, epoch: int | None = None) -> int:
        epoch = self.epoch if epoch is None else epoch
        return self.retain_order[(epoch * len(self) + i) % len(self.retain_order)]

    def __len__(self) -> int:
        return len(self.forget.examples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        # The training sampler hands over (epoch, i), so the pairing is right even in a worker
        # process that was forked before set_epoch; a plain i uses the epoch set last.
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        item = {"index": i, "forget": self.forget.examples[i]}
        if self.retain is not None:
            item["retain_index"] = self.retain_index(i, epoch)
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
        prompt_format: a :class:`PromptFormat` or its name (``unlearn.data.formatting``).
        uses_retain, uses_idk: the loss strategy's flags; unused parts are not built.
    """

    def __init__(self, forget_rows, retain_rows, idk_answers, tokenizer,
                 prompt_format: str | PromptFormat = "plain",
                 max_length: int = 128, batch_size: int = 8, num_workers: int = 0, seed: int = 1001,
                 uses_retain: bool = True, uses_idk: bool = False, forget_format: str = "qa",
                 retain_format: str = "qa"):
        super().__init__()
        self.tokenizer = tokenizer
        self.fmt = PromptFormat.of(prompt_format)
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.forget = self._tokenize(forget_rows, forget_format, max_length, "forget")
        self.retain = self._tokenize(retain_rows, retain_format, max_length, "retain") if uses_retain else None
        self.idk = None
        if uses_idk and forget_format == "text":
            raise DataError("The IDK and DPO strategies answer each forget question with a refusal, and a raw-text "
                            "forget set (data.forget_format=text) has no questions; choose another loss.")
        if uses_idk:
            rng = random.Random(seed + 1)
            idk_rows = [{"question": r["question"], "answer": rng.choice(idk_answers)} for r in forget_rows]
            self.idk = tokenize_split(idk_rows, tokenizer, self.fmt, max_length, name="idk")
        for name, split in (("forget", self.forget), ("retain", self.retain)):
            if split is not None and split.truncated:
                log.warning("%d of %d %s examples are longer than data.max_length=%d and were cut "
                            "(each keeps at least one answer token); raise data.max_length to keep them whole.",
                            split.truncated, len(split.examples), name, max_length)
        self.dataset = UnlearningDataset(self.forget, self.retain, self.idk, seed)
        self.max_length = max_length
        self._loader: ResumableDataLoader | None = None
        self._resume_at: dict | None = None  # the loader's place in an epoch, from a checkpoint

    def _tokenize(self, rows: list[dict], fmt: str, max_length: int, name: str) -> QASplit:
        if fmt == "text":  # documents: language-modelling chunks (unlearn.data.custom)
            from unlearn.data.custom import text_rows_and_examples

            return QASplit(*text_rows_and_examples(rows, self.tokenizer, max_length))
        return tokenize_split(rows, self.tokenizer, self.fmt, max_length, name=name)

    def report(self) -> dict:
        """Sizes and truncation counts of the tokenised splits, for the run summary."""
        splits = {"forget": self.forget, "retain": self.retain, "idk": self.idk}
        return {"rows": {name: len(split.rows) for name, split in splits.items() if split is not None},
                "truncated": {name: split.truncated for name, split in splits.items() if split is not None},
                "max_length": self.max_length}

    def train_dataloader(self) -> DataLoader:
        # The order depends on the data seed and the epoch only, so a resumed run replays it (see
        # unlearn.data.sampling); the sampler shards over processes itself, so Lightning keeps it.
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = EpochSampler(self.dataset, self.seed, num_replicas=world, rank=rank)
        self._loader = ResumableDataLoader(
            self.dataset, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
            collate_fn=UnlearningCollator(self.tokenizer.pad_token_id),
            generator=torch.Generator().manual_seed(self.seed))  # worker seeds, without touching the global RNG
        if self._resume_at is not None:
            self._loader.load_state_dict(self._resume_at)
        return self._loader

    def state_dict(self) -> dict:
        # Lightning saves this with each checkpoint and restores it before asking for the loader,
        # which is why the place in the epoch is kept here rather than left to the loop.
        return {"loader": self._loader.state_dict()} if self._loader is not None else {}

    def load_state_dict(self, state_dict: dict) -> None:
        self._resume_at = state_dict.get("loader")
        if self._loader is not None and self._resume_at is not None:
            self._loader.load_state_dict(self._resume_at)
