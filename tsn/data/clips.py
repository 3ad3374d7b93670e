"""An in-memory clip dataset for smoke runs, tests and benchmarks (`data.dataset=clips`).

With the tiny backbone (`model.arch=tiny`, tsn/models/tiny.py) it exercises the whole training
engine (segments, consensus, partial BN, dropout, Caffe multipliers, checkpoints, several
processes) in seconds on a CPU, with no video data.
"""

from __future__ import annotations

import time

import torch
from torch.utils.data import Dataset


class SyntheticClips(Dataset):
    """Deterministic random clips whose class shows as a per-class channel offset.

    Item i in epoch e is generated from a generator seeded with (seed, e, i), like TSNDataset's
    per-item sampling, so the data order and content are reproducible and resumable.
    """

    def __init__(
        self,
        size: int,
        num_segments: int,
        new_length: int,
        frame_shape: tuple[int, ...],
        num_classes: int,
        seed: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        self.size, self.num_segments, self.new_length = size, num_segments, new_length
        self.frame_shape, self.num_classes = tuple(frame_shape), num_classes
        self.seed, self.delay_s, self.epoch = seed, delay_s, 0
        g = torch.Generator().manual_seed(seed)
        self.class_offset = torch.randn(num_classes, frame_shape[0], generator=g)

    def set_epoch(self, epoch: int) -> None:
        """Per-item noise depends on the epoch, as augmentation does."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.delay_s:
            time.sleep(self.delay_s)  # simulated decode cost (benchmarks of the loop)
        label = index % self.num_classes
        g = torch.Generator().manual_seed((self.seed * 1000 + self.epoch) * 100_003 + index)
        c, h, w = self.frame_shape
        frames = self.num_segments * self.new_length
        x = torch.randn(frames, c, h, w, generator=g)
        x += self.class_offset[label].view(1, c, 1, 1)
        return x.reshape(frames * c, h, w), label
