"""Running a model on TOFU's four evaluation splits, batched, and sharded across ranks under DDP.

Per split, every (question, candidate answer) pair of this rank's questions — true answer,
paraphrase, perturbed answers — is flattened into one list and scored by
:func:`unlearn.models.scoring.score_examples` in length-sorted batches; the questions' prompts are then
answered greedily in left-padded batches. Questions are dealt to ranks like a
``DistributedSampler`` (padded so every rank gets the same number), each rank feeds its
per-question values into a torchmetrics :class:`~unlearn.evaluation.ranks.PerQuestionValues`, and ``compute()`` gathers them
and puts them back in row order, so every rank ends with the same result as a single process.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from unlearn.data.formatting import PromptFormat, TokenizedExample, prompt_ids, tokenize_qa
from unlearn.data.sources import GENERAL_PERTURBED_FIELDS, PERTURBED_FIELDS, load_split
from unlearn.evaluation.generation import greedy_generate
from unlearn.evaluation.membership import MembershipProbe
from unlearn.evaluation.metrics import rouge_l_recall
from unlearn.evaluation.ranks import PerQuestionValues, gather_objects, shard
from unlearn.evaluation.results import AUTHOR_SPLITS, SPLITS, EvalResult, SplitResult
from unlearn.identity import short_hash, stable_json, tokenizer_fingerprint
from unlearn.models.scoring import score_examples


def split_files(forget_split: str) -> dict[str, str]:
    """TOFU file stem of each evaluation split."""
    return {"forget": f"{forget_split}_perturbed", "retain": "retain_perturbed",
            "real_authors": "real_authors_perturbed", "world_facts": "world_facts_perturbed"}


def load_eval_splits(source: str | Path, forget_split: str, max_rows: int | None = None) -> dict[str, list[dict]]:
    """Rows of the four evaluation splits.

    Args:
        max_rows: Keep only the first rows of the forget and retain splits (TOFU's legacy code
            used 300); ``None`` keeps all, as open-unlearning does.
    """
    splits = {}
    for name, stem in split_files(forget_split).items():
        rows = load_split(source, stem, PERTURBED_FIELDS if name in AUTHOR_SPLITS else GENERAL_PERTURBED_FIELDS)
        splits[name] = rows[:max_rows] if max_rows is not None and name in AUTHOR_SPLITS else rows
    return splits


def benchmark_fingerprint(splits: dict[str, list[dict]]) -> str:
    """A short hash of every row the evaluation reads."""
    return short_hash(stable_json(splits))


class TofuEvaluator:
    """Computes :class:`EvalResult` for a model; tokenises the benchmark once, at construction.

    Args:
        tokenizer: The model's tokenizer (pad token set).
        splits: ``{"forget": rows, "retain": rows, "real_authors": rows, "world_facts": rows}``
            (:func:`load_eval_splits`).
        prompt_format: As in training: a :class:`~unlearn.data.formatting.PromptFormat` or its name.
        max_length: Cap on prompt + answer tokens when scoring.
        max_new_tokens: Generation cap for ROUGE-L (TOFU: 200).
        batch_size: Sequences per forward pass when scoring; prompts per batch when generating.
        holdout: Question/answer rows of authors the target never saw (TOFU's ``holdoutXX``), the
            non-members of the membership-inference attacks; None when the benchmark has none.
        mia_attacks: Attacks to run (:data:`unlearn.names.MIA_ATTACKS`); empty turns membership
            inference and memorisation off.
        mia_k: Min-K% and Min-K%++'s fraction.
    """

    def __init__(self, tokenizer, splits: dict[str, list[dict]], prompt_format: str | PromptFormat = "plain",
                 max_length: int = 512, max_new_tokens: int = 48, batch_size: int = 32,
                 holdout: list[dict] | None = None, mia_attacks: tuple[str, ...] = (), mia_k: float = 0.4):
        missing = [name for name in SPLITS if name not in splits]
        if missing:
            raise ValueError(f"evaluation splits missing: {missing}")
        if max_new_tokens < 1 or batch_size < 1:
            raise ValueError(f"max_new_tokens and batch_size must be >= 1, got {max_new_tokens}, {batch_size}")
        self.tokenizer, self.splits = tokenizer, splits
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        fmt = PromptFormat.of(prompt_format)
        self.prompts = {name: [prompt_ids(tokenizer, fmt, r["question"]) for r in rows] for name, rows in splits.items()}
        # Per question: [true answer, base answer (author splits only), perturbed answers...].
        self.candidates: dict[str, list[list[TokenizedExample]]] = {}
        for name, rows in splits.items():
            self.candidates[name] = [
                [tokenize_qa(tokenizer, fmt, r["question"], text, max_length) for text in self._texts(name, r)]
                for r in rows]
        # The stored retain results are keyed by these (unlearn.evaluation.cache): the exact prompts and
        # scored tokens, so a chat template's date, a template or tokenisation change is a new key.
        self.settings = {"prompt_format": fmt.name, "max_length": max_length, "max_new_tokens": max_new_tokens,
                         "rows": {name: len(rows) for name, rows in splits.items()},
                         "benchmark": benchmark_fingerprint(splits), "tokenizer": tokenizer_fingerprint(tokenizer),
                         "prompts": short_hash(self.prompts),
                         "examples": short_hash({name: [[(e.input_ids, e.labels) for e in c] for c in per_row]
                                                 for name, per_row in self.candidates.items()})}
        self.membership = None
        if mia_attacks:
            nonmember = None if holdout is None else [tokenize_qa(tokenizer, fmt, r["question"], r["answer"], max_length)
                                                      for r in holdout]
            self.membership = MembershipProbe(
                tokenizer, [c[0] for c in self.candidates["forget"]], nonmember, tuple(mia_attacks), mia_k, batch_size,
                no_holdout_reason="no holdout split beside the forget split (TOFU's holdoutXX, authors the target "
                                  "never saw) in this benchmark's files")
            self.settings["membership"] = {"attacks": list(mia_attacks), "k": mia_k,
                                           "holdout": None if holdout is None else benchmark_fingerprint(holdout)}

    @staticmethod
    def _texts(name: str, row: dict) -> list[str]:
        perturbed = row["perturbed_answer"]
        perturbed = [perturbed] if isinstance(perturbed, str) else list(perturbed)
        base = [row["paraphrased_answer"]] if name in AUTHOR_SPLITS else []
        return [row["answer"], *base, *perturbed]

    @torch.no_grad()
    def __call__(self, model, rank: int | None = None, world_size: int | None = None,
                 gradients: bool = True) -> EvalResult:
        """Evaluate ``model`` on every split; under DDP call it on every rank (it gathers).

        Args:
            rank, world_size: Default to the initialised process group, else ``0, 1``.
            gradients: Whether the GradNorm attack may take gradients (not while weights are sharded).
        """
        if rank is None or world_size is None:
            distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
            rank = torch.distributed.get_rank() if distributed else 0
            world_size = torch.distributed.get_world_size() if distributed else 1
        splits = {name: self._evaluate_split(model, name, rank, world_size) for name in SPLITS}
        membership = None if self.membership is None else self.membership(model, rank, world_size, gradients)
        return EvalResult(splits, info={"settings": self.settings}, membership=membership)

    def _evaluate_split(self, model, name: str, rank: int, world_size: int) -> SplitResult:
        rows, candidates = self.splits[name], self.candidates[name]
        # Similar lengths on every rank, so no rank waits long for the others.
        order = sorted(range(len(rows)), key=lambda i: sum(len(c.input_ids) for c in candidates[i]))
        mine = shard(order, rank, world_size)
        flat = [example for i in mine for example in candidates[i]]
        nll, counts = score_examples(model, flat, self.tokenizer.pad_token_id, self.batch_size)
        nll_bar = (nll.double() / counts.clamp(min=1).double()).tolist()

        first = 2 if name in AUTHOR_SPLITS else 1  # position of the first perturbed answer
        width = max(len(c) for c in candidates) - first
        answer_nll, base_nll = torch.empty(len(mine), dtype=torch.float64), torch.empty(len(mine), dtype=torch.float64)
        perturbed_nll = torch.full((len(mine), width), float("nan"), dtype=torch.float64)
        offset = 0
        for row, i in enumerate(mine):
            values = nll_bar[offset:offset + len(candidates[i])]
            offset += len(candidates[i])
            answer_nll[row], base_nll[row] = values[0], values[first - 1]
            perturbed_nll[row, :len(values) - first] = torch.tensor(values[first:], dtype=torch.float64)

        generations = greedy_generate(model, self.tokenizer, [self.prompts[name][i] for i in mine],
                                      self.max_new_tokens, self.batch_size)
        rouge = rouge_l_recall(generations, [rows[i]["answer"] for i in mine])

        values = PerQuestionValues().to(next(model.parameters()).device)
        values.update(torch.tensor(mine), answer_nll, base_nll, perturbed_nll, torch.from_numpy(rouge))
        gathered = values.compute()
        texts = dict(gather_objects(list(zip(mine, generations)), world_size))
        index = gathered["index"].astype(np.int64)
        return SplitResult(name, index, [rows[i]["question"] for i in index], [rows[i]["answer"] for i in index],
                           [texts[int(i)] for i in index], gathered["answer_nll"], gathered["base_nll"],
                           gathered["perturbed_nll"], gathered["rouge_l"])
