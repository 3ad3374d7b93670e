"""VGG-16 (Simonyan & Zisserman 2014, configuration D) as the Caffe VGG_ILSVRC_16_layers net.

Thirteen 3x3/s1/p1 convolutions (with bias, ReLU) in five stages separated by MAX 2x2/s2 pools,
then fc6 (25088 -> 4096), fc7 (4096 -> 4096), and the action classifier `.fc` in place of fc8.
The input must be 224x224 (fc6 expects a 7x7x512 map); there is no BN.

Dropout: the ImageNet net has drop6 and drop7 (0.5 each). TSN's "dropout before the classifier"
(0.8 RGB / 0.7 flow) takes the place of drop7, the one directly before the classifier; drop6
keeps VGG's own 0.5 (our choice: the TSN paper gives one ratio per stream, not per layer).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from prototxt_port.caffe_layers import CaffeDropout
from tsn.models.units import ConvReLU, caffe_max_pool

# Output channels of conv{stage}_{i}; configuration D of the VGG paper (Table 1).
STAGES: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)


class VGG16(nn.Module):
    """VGG-16 with a replaceable classifier: 224x224 input, 4096-d fc7 features, dropout, fc."""

    feature_dim = 4096

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 101,
        dropout: float = 0.8,
        hidden_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        units: dict[str, nn.Module] = {}
        c_in = in_channels
        for stage, widths in enumerate(STAGES, start=1):
            for i, c_out in enumerate(widths, start=1):
                units[f"conv{stage}_{i}"] = ConvReLU(c_in, c_out, 3, 1, 1)
                c_in = c_out
            units[f"pool{stage}"] = caffe_max_pool(2, 2)
        self.features = nn.Sequential(OrderedDict(units))  # keys as the Caffe layer names
        self.fc6 = nn.Linear(512 * 7 * 7, 4096)
        self.drop6 = CaffeDropout(hidden_dropout)
        self.fc7 = nn.Linear(4096, 4096)
        self.dropout = CaffeDropout(dropout)  # drop7
        self.fc = nn.Linear(self.feature_dim, num_classes)  # replaces fc8

    @property
    def conv1(self) -> ConvReLU:
        """The first conv unit (conv1_1), under the name every backbone shares."""
        return self.features.conv1_1

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch (N, C, 224, 224) -> fc7 features after ReLU (N, 4096)."""
        x = self.features(x).flatten(1)  # N x 512 x 7 x 7 -> N x 25088
        x = self.drop6(torch.relu(self.fc6(x)))  # N x 4096
        return torch.relu(self.fc7(x))  # N x 4096

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch (N, C, 224, 224) -> logits (N, num_classes)."""
        return self.fc(self.dropout(self.forward_features(x)))
