"""A tiny CPU backbone for smoke runs, the demo profile, tests and benchmarks (not in the paper).

conv-BN-ReLU x2 (width 8, 3x3) -> global average pool -> dropout -> fc: seconds per run on a
CPU, yet wrapped by the real TSN (segments, consensus, partial BN, init record) so the demo
exercises the same code path as BN-Inception. Its BN layers are CaffeBatchNorm, so partial BN
("release": the second BN frozen) works as on BN-Inception.

It keeps PyTorch's default initialisers, drawn from the experiment's seed (`torch_init`): it
has no Caffe fillers or ImageNet weights of its own (tsn.models.build_tsn records "random").
Module creation order (conv1, conv2, fc) fixes the random draws; keep it when editing.
"""

from __future__ import annotations

import torch
from torch import nn

from prototxt_port.caffe_layers import CaffeDropout
from tsn.models.bn_inception import ConvBNReLU


class TinyNet(nn.Module):
    """Two conv-BN-ReLU units, global average pool, dropout, classifier."""

    torch_init = True  # PyTorch's default initialisers, not Caffe's fillers (build_tsn)

    def __init__(self, in_channels: int = 3, num_classes: int = 101, dropout: float = 0.0,
                 width: int = 8) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, width, 3, 1, 1)
        self.conv2 = ConvBNReLU(width, width, 3, 1, 1)
        self.dropout = CaffeDropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Snippets (M, C, H, W) -> pooled features (M, width)."""
        return self.conv2(self.conv1(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Snippets (M, C, H, W) -> logits (M, num_classes)."""
        return self.fc(self.dropout(self.forward_features(x)))
