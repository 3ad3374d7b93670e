"""The resumable, rank-sharded batch stream (tsn/engine/stream.py)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from tsn.engine.stream import BatchStream, RankBatchSampler, StreamPosition


class Indices(Dataset):
    """Item i is i; records the epochs it was told about."""

    def __init__(self, n: int) -> None:
        self.n, self.epochs = n, []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return torch.tensor([i]), i


def test_ranks_share_out_exactly_the_single_process_batches():
    """Rank r takes batches r, r+N, ... (Caffe OffsetCursor): 2 ranks == 1 rank, interleaved."""
    single = list(RankBatchSampler(40, 4, seed=1, epoch=3, rank=0, world=1))
    r0 = list(RankBatchSampler(40, 4, seed=1, epoch=3, rank=0, world=2))
    r1 = list(RankBatchSampler(40, 4, seed=1, epoch=3, rank=1, world=2))
    assert single[0::2] == r0 and single[1::2] == r1
    flat = [i for b in single for i in b]
    assert sorted(flat) == list(range(40))  # one permutation: every item once per epoch


def test_epochs_reshuffle_reproducibly_and_skip_resumes_mid_epoch():
    e0 = list(RankBatchSampler(20, 5, seed=0, epoch=0, rank=0, world=1))
    e1 = list(RankBatchSampler(20, 5, seed=0, epoch=1, rank=0, world=1))
    assert e0 != e1 and e0 == list(RankBatchSampler(20, 5, seed=0, epoch=0, rank=0, world=1))
    assert list(RankBatchSampler(20, 5, seed=0, epoch=0, rank=0, world=1, skip=3)) == e0[3:]


def test_stream_crosses_epochs_and_restarts_from_its_position():
    data = Indices(10)  # 2 batches of 4 per epoch (the incomplete last batch is dropped)
    stream = BatchStream(data, 4, seed=5)
    first = [next(stream)[1].tolist() for _ in range(5)]
    assert stream.position == StreamPosition(epoch=2, batch=1)
    assert data.epochs == [0, 1, 2]  # set_epoch before each epoch's loader
    resumed = BatchStream(Indices(10), 4, seed=5, start=StreamPosition(epoch=1, batch=1))
    assert [next(resumed)[1].tolist() for _ in range(2)] == first[3:5]


def test_too_small_dataset_is_a_clear_error():
    with pytest.raises(ValueError, match="too few for one batch of 8 per rank on 2 rank"):
        BatchStream(Indices(10), 8, seed=0, world=2)
