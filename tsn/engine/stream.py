"""A resumable, rank-sharded stream of training batches.

Order: epoch e is a permutation of the dataset drawn from a generator seeded with (seed, e), cut
into batches of `batch_size` (an incomplete last batch is dropped). Batches are dealt to ranks
round-robin, like Caffe's OffsetCursor (rank r takes batches r, r+N, r+2N, ...;
docs/caffe_release.md#mpi), so
`N processes x iter_size 1` sees exactly the batches of `1 process x iter_size N`. Difference
from Caffe, named: Caffe's ranks shuffle the list with their own seeds, so a video can be seen
by two ranks in one "epoch"; here one shared permutation covers each video once per epoch.

The position (epoch, batches this rank consumed in it) is all a checkpoint needs: a resumed run
regenerates the same permutation and skips the consumed batches. `dataset.set_epoch(epoch)` is
called before each epoch's loader starts so per-item augmentation can be seeded from the epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


@dataclass(frozen=True)
class StreamPosition:
    """How far the stream has gone: batches consumed by this rank in `epoch`."""

    epoch: int = 0
    batch: int = 0


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of an epoch's permutation (and of its DataLoader worker seeds)."""
    g = torch.Generator()
    g.manual_seed(seed * 1_000_003 + epoch)
    return g


class RankBatchSampler(Sampler[list[int]]):
    """This rank's batches of one epoch, starting after `skip` already consumed batches."""

    def __init__(
        self, n: int, batch_size: int, seed: int, epoch: int, rank: int, world: int, skip: int = 0
    ) -> None:
        self.n, self.batch_size = n, batch_size
        self.seed, self.epoch, self.rank, self.world, self.skip = seed, epoch, rank, world, skip

    def batches_per_rank(self) -> int:
        """Batches each rank gets per epoch (equal on every rank, so no rank waits alone)."""
        return (self.n // self.batch_size) // self.world

    def __len__(self) -> int:
        return max(0, self.batches_per_rank() - self.skip)

    def __iter__(self) -> Iterator[list[int]]:
        perm = torch.randperm(self.n, generator=epoch_generator(self.seed, self.epoch)).tolist()
        for k in range(self.skip, self.batches_per_rank()):
            j = k * self.world + self.rank  # global batch number within the epoch
            yield perm[j * self.batch_size : (j + 1) * self.batch_size]


class BatchStream:
    """Endless iterator of (inputs, labels) over epochs; `position` says where it stands."""

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        num_workers: int = 0,
        worker_init_fn: Callable | None = None,
        start: StreamPosition = StreamPosition(),
        pin_memory: bool = False,
    ) -> None:
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world = rank, world
        self.num_workers, self.worker_init_fn, self.pin_memory = (
            num_workers,
            worker_init_fn,
            pin_memory,
        )
        self.position = start
        n = len(dataset)  # type: ignore[arg-type]
        if (n // batch_size) // world == 0:
            raise ValueError(
                f"the dataset has {n} items: too few for one batch of {batch_size} per rank "
                f"on {world} rank(s); lower solver.batch_per_process"
            )
        self._it: Iterator | None = None

    def _start_epoch(self) -> None:
        pos = self.position
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(pos.epoch)
        sampler = RankBatchSampler(
            len(self.dataset), self.batch_size, self.seed, pos.epoch, self.rank, self.world,
            pos.batch,
        )
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=self.num_workers,
            worker_init_fn=self.worker_init_fn,
            # worker seeds come from this generator: a function of (seed, epoch, rank)
            generator=epoch_generator(self.seed + 7919 * self.rank, pos.epoch),
            pin_memory=self.pin_memory,
            persistent_workers=False,
        )
        self._it = iter(loader)

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self):
        while True:
            if self._it is None:
                self._start_epoch()
            try:
                batch = next(self._it)
            except StopIteration:
                self._it = None
                self.position = StreamPosition(self.position.epoch + 1, 0)
                continue
            self.position = StreamPosition(self.position.epoch, self.position.batch + 1)
            return batch
