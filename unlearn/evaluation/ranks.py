"""Dealing evaluation work to ranks and gathering it back, so every rank ends with one process's result."""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat


def shard(order: list[int], rank: int, world_size: int) -> list[int]:
    """``DistributedSampler``'s split without shuffling: pad by wrapping around, then take every ``world_size``-th."""
    padded = order + order[:(-len(order)) % world_size]
    return padded[rank::world_size]


def gather_objects(part: list, world_size: int) -> list:
    """Every rank's ``part`` (a picklable list) joined, in rank order; the list itself on one process."""
    if world_size == 1:
        return list(part)
    gathered: list = [None] * world_size
    torch.distributed.all_gather_object(gathered, part)
    return [item for rank_part in gathered for item in rank_part]


class PerQuestionValues(Metric):
    """Per-question values of one split, gathered across ranks and returned in row order.

    States are concatenated across ranks (``dist_reduce_fx="cat"``); the row index travels with
    the values, so ``compute`` can sort them and drop the duplicates that padding the shards made.
    ``fields`` name the values after the index (TOFU's by default; multiple choice gathers its own).
    """

    full_state_update = False
    FIELDS = ("answer_nll", "base_nll", "perturbed_nll", "rouge_l")

    def __init__(self, fields: tuple[str, ...] = FIELDS) -> None:
        super().__init__()
        self.fields = ("index", *fields)
        for name in self.fields:
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, index: torch.Tensor, *values: torch.Tensor) -> None:
        if len(values) != len(self.fields) - 1:
            raise ValueError(f"expected values for {self.fields[1:]}, got {len(values)}")
        for name, value in zip(self.fields, (index, *values)):
            getattr(self, name).append(value.to(self.device))

    def compute(self) -> dict[str, np.ndarray]:
        values = {name: dim_zero_cat(getattr(self, name)).cpu().numpy() for name in self.fields}
        _, first = np.unique(values["index"], return_index=True)  # sorted by index, duplicates dropped
        return {name: value[first] for name, value in values.items()}
