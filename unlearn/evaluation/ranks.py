"""Dealing evaluation work to ranks and gathering it back, so every rank ends with one process's result."""

from __future__ import annotations

import torch


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
