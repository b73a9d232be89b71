"""The relearning attack: fine-tune on part of the forget set, measure the rest.

Hu et al. 2024 (arXiv 2406.13356) and Łucki et al. 2024 (arXiv 2409.18025) show that a few
fine-tuning steps on a small part of the forget set (or on loosely related text) bring back much of
what an unlearned model seemed to have forgotten: the knowledge was hidden, not removed. Deeb &
Roger 2024 (arXiv 2410.08827) make the test strict: the attacker gets some facts, and recovery is
measured on *other* facts that cannot be inferred from them.

Splitting the forget set: by whole authors (the default, ``attack.relearn.unit=author``), so no
held-out question is about an author the attacker trained on. TOFU's questions about one author
share facts (the name, the genre, the parents' jobs recur across its 20 answers), so a split by
question would let the attacker learn part of a held-out answer outright, and recovery would
measure learning, not resurfacing. TOFU's forget rows come in blocks of 20 per author
(``forget10`` = 20 authors), the built-in benchmark's in blocks of ``data.builtin.questions_per_author``
(``unlearn.data.synthetic``). ``unit=question`` splits rows instead, for forget sets of one author.

The attacker's share, ``attack.relearn.fraction`` (default 0.1, at least one author and never all):
small, because a realistic attacker knows little and the cited papers recover with tens of
examples; and it leaves 90% of the forget set held out, so the held-out numbers keep most of the
statistical power of the full forget split (forget quality is a KS test whose p-value depends on
the sample size) and compare with the standard evaluation.

The model under test is fine-tuned in memory from a fresh load; nothing is written to its folder.
The retain model gets the same attack, as the baseline of what the same steps teach a model that
never knew the held-out authors.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from functools import partial

import lightning as L
from torch.utils.data import DataLoader

from unlearn.data.formatting import PromptFormat, TokenizedExample, collate, tokenize_qa
from unlearn.errors import DataError
from unlearn.training.sft import SupervisedFinetuning

log = logging.getLogger(__name__)

TOFU_ROWS_PER_AUTHOR = 20  # TOFU's forget splits: 20 questions per fictitious author, in order
UNITS = ("author", "question")


@dataclass(frozen=True)
class RelearnSplit:
    """Row numbers of the forget split: the attacker's part and the held-out part (disjoint, sorted)."""

    attack: list[int]
    held_out: list[int]
    unit: str
    block: int  # rows per unit (1 for questions)

    def to_dict(self) -> dict:
        return {"unit": self.unit, "rows_per_unit": self.block, "attack_rows": self.attack,
                "held_out_rows": self.held_out}


def split_forget_rows(n_rows: int, fraction: float, seed: int, unit: str = "author",
                      rows_per_author: int = TOFU_ROWS_PER_AUTHOR) -> RelearnSplit:
    """Deal the forget split's rows into the attacker's part and the held-out part.

    Whole units (authors: consecutive blocks of ``rows_per_author`` rows; or single questions) are
    drawn with a seeded generator (the same ``seed`` always gives the same split): ``fraction`` of
    them, rounded half up, at least one, and always leaving one held out.

    Raises:
        DataError: the rows are not whole blocks of ``rows_per_author``, or there are fewer than two units.
    """
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, got {unit!r}")
    block = rows_per_author if unit == "author" else 1
    if block < 1 or n_rows % block:
        raise DataError(f"The forget split has {n_rows} rows, not whole authors of {block} rows each. Set "
                        "attack.relearn.author_rows to the rows per author, or attack.relearn.unit=question.")
    units = n_rows // block
    if units < 2:
        raise DataError(f"The forget split has {units} {unit}{'s' if units != 1 else ''}: the attacker's part and the "
                        "held-out part need one each. Use a larger forget split, or attack.relearn.unit=question to "
                        "split one author's questions.")
    count = min(units - 1, max(1, int(units * fraction + 0.5)))
    chosen = set(random.Random(f"{seed}:relearn").sample(range(units), count))
    attack = [u * block + i for u in sorted(chosen) for i in range(block)]
    held_out = [u * block + i for u in range(units) if u not in chosen for i in range(block)]
    return RelearnSplit(attack, held_out, unit, block)


def read_relearn_file(path: str, fmt: str, columns: dict[str, str]) -> list[dict]:
    """The attacker's own data (``attack.relearn.data_path``): question/answer rows or documents.

    Raises:
        DataError: the file cannot be read, lacks a column, or has an empty field.
    """
    from unlearn.data.custom import read_dataset
    from unlearn.data.sources import validate_rows

    rows, present = read_dataset(path, key="attack.relearn.data_path")
    wanted = ("question", "answer") if fmt == "qa" else ("text",)
    missing = [f"data.columns.{field}={columns[field]!r}" for field in wanted if columns[field] not in present]
    if missing:
        raise DataError(f"The relearning set {path} has no column for {', '.join(missing)}; its columns are {present}. "
                        "Map them with data.columns.<field>=<column>, or set attack.relearn.data_format=text for "
                        "documents.")
    renamed = [{field: row[columns[field]] for field in wanted} for row in rows]
    validate_rows(renamed, wanted, f"the relearning set {path}")
    return renamed


def relearn_examples(rows: list[dict], tokenizer, prompt_format: str | PromptFormat, max_length: int,
                     fmt: str = "qa") -> list[TokenizedExample]:
    """Training examples: question/answer pairs as in fine-tuning, or documents as language modelling."""
    if fmt == "text":
        from unlearn.data.custom import tokenize_text

        return [example for row in rows for example in tokenize_text(tokenizer, row["text"], max_length)]
    fmt_ = PromptFormat.of(prompt_format)
    return [tokenize_qa(tokenizer, fmt_, r["question"], r["answer"], max_length) for r in rows]


def relearn_(model, examples: list[TokenizedExample], pad_token_id: int, steps: int, lr: float, batch_size: int,
             weight_decay: float = 0.0, warmup: float = 0.0, seed: int = 0, accelerator: str = "auto",
             precision: str = "32-true", progress_bar: bool = False):
    """Fine-tune ``model`` in place for exactly ``steps`` optimiser steps of ``batch_size`` examples.

    The examples are repeated in order until they fill ``steps * batch_size`` places, then shuffled
    (seeded), so every example is seen as evenly as the budget allows, however few there are. The
    loss, optimiser and schedule are fine-tuning's (:class:`~unlearn.training.sft.SupervisedFinetuning`:
    token-mean NLL on the labels, AdamW, linear warm-up over ``warmup`` × ``steps`` then linear decay).

    Returns:
        ``model``, trained, on the CPU, in eval mode.
    """
    if not examples:
        raise DataError("The relearning set is empty: nothing to fine-tune on.")
    L.seed_everything(seed, verbose=False)
    places = [examples[i % len(examples)] for i in range(steps * batch_size)]
    loader = DataLoader(places, batch_size=batch_size, shuffle=True,
                        collate_fn=partial(collate, pad_token_id=pad_token_id))
    log.info("Relearning on %d examples: %d steps of %d, lr %g", len(examples), steps, batch_size, lr)
    # One epoch of exactly `steps` batches: warm-up given in epochs is then a fraction of the steps.
    module = SupervisedFinetuning(model, lr, weight_decay, warmup)
    trainer = L.Trainer(max_epochs=1, accelerator=accelerator, devices=1, precision=precision, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress_bar)
    trainer.fit(module, loader)
    return model.cpu().eval()
