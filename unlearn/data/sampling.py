"""Training order that a resumed run reproduces exactly, down to the batch.

The shuffle of epoch ``e`` is a permutation drawn from ``seed + e`` alone (the same rule as
``DistributedSampler``, which this sampler is), so it does not depend on how many random numbers
were drawn before it, and a run resumed at epoch ``e`` sees the order an uninterrupted run saw.
Each index travels with its epoch, ``(epoch, i)``, so the forget/retain pairing of that epoch is
right in worker processes. The loader reports how many batches of the epoch it has served; the
data module keeps that in the checkpoint and hands it back on resume, and the sampler then skips
the batches already trained on.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import DataLoader, DistributedSampler


class EpochSampler(DistributedSampler):
    """Seeded per-epoch shuffle yielding ``(epoch, index)``; sharded like ``DistributedSampler``.

    Args:
        dataset: A sized dataset whose ``__getitem__`` accepts ``(epoch, index)``.
        seed: The run's data seed.
        num_replicas, rank: Process count and this process's rank (1 and 0 on one device).
    """

    def __init__(self, dataset, seed: int, num_replicas: int = 1, rank: int = 0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=False)
        self._skip: tuple[int, int] | None = None  # (epoch, samples) to leave out once, on resume
        self.skipped = 0  # samples left out at the start of the epoch being iterated

    def skip_once(self, epoch: int, samples: int) -> None:
        """Leave out the first ``samples`` items the next time ``epoch`` is iterated."""
        self._skip = (epoch, samples)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # A generator: this body runs at the first batch, after Lightning has called set_epoch.
        epoch, self.skipped = self.epoch, 0
        if self._skip is not None and self._skip[0] == epoch:
            self.skipped, self._skip = self._skip[1], None
        for position, index in enumerate(super().__iter__()):
            if position >= self.skipped:
                yield epoch, index


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSampler` that reports and restores its place in an epoch.

    The underlying iterator is created at the first batch request, not when Lightning calls
    ``iter()``: Lightning builds the iterator before a resumed run's epoch is set, and worker
    processes would otherwise take their first indices from the wrong epoch.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError(f"{type(self).__name__} needs an EpochSampler, got {type(self.sampler).__name__}.")
        self._live = None  # the iterator of the epoch in progress

    def __iter__(self):
        return self._lazy()

    def _lazy(self):
        self._live = super().__iter__()
        yield from self._live

    def state_dict(self) -> dict:
        """``{"epoch", "batches"}``: batches of that epoch already handed to training."""
        # `_num_yielded` counts batches handed out, not those that workers have prefetched.
        served = self._live._num_yielded if self._live is not None else 0
        return {"epoch": self.sampler.epoch, "batches": self.sampler.skipped // self.batch_size + served}

    def load_state_dict(self, state_dict: dict) -> None:
        """Continue after the batches recorded in ``state_dict`` when their epoch is next iterated."""
        self.sampler.skip_once(state_dict["epoch"], state_dict["batches"] * self.batch_size)
