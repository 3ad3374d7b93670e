"""A tiny TSN-shaped model and an in-memory clip dataset for smoke runs, tests and benchmarks.

They exercise the whole training engine (segments, consensus, partial BN, dropout, Caffe
multipliers, checkpoints, several processes) in seconds on a CPU, with no video data.
Selected by `model.arch=tiny` and `data.dataset=clips`.
"""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.utils.data import Dataset

from prototxt_port.caffe_layers import CaffeBatchNorm, CaffeDropout


class TinyTSN(nn.Module):
    """conv-BN-ReLU x2 -> global pool -> dropout -> fc per snippet, then average consensus.

    The first BN learns with batch statistics and the second is frozen: the release's partial BN
    pattern (docs/caffe_release.md#partial-bn) at toy scale. Input (N, K*L*C, H, W), output (N,
    num_classes).
    """

    def __init__(
        self,
        in_channels: int,
        num_segments: int,
        num_classes: int,
        dropout: float = 0.0,
        width: int = 8,
        partial_bn: str = "release",
    ) -> None:
        super().__init__()
        self.num_segments = num_segments
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn1 = CaffeBatchNorm(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.bn2 = CaffeBatchNorm(width)
        if partial_bn != "none":  # release: stats and affine frozen; paper: stats only
            self.bn2.set_frozen(True, freeze_affine=None if partial_bn == "release" else False)
        with torch.no_grad():  # a frozen BN uses its running stats: start them at identity
            self.bn1.running_var.fill_(1.0)
            self.bn2.running_var.fill_(1.0)
        self.drop = CaffeDropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = x.reshape(n * self.num_segments, -1, *x.shape[2:])  # N*K x L*C x H x W
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        x = self.drop(x.mean(dim=(2, 3)))  # N*K x width
        x = self.fc(x)  # N*K x num_classes
        return x.reshape(n, self.num_segments, -1).mean(dim=1)  # consensus: average, N x classes


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
