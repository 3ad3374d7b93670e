"""ClarifaiNet-style backbone: the two-stream baseline of TSN Table 1/4 (Simonyan & Zisserman 2014).

The two-stream paper's ConvNet is a ZFNet/Clarifai-like net (Zeiler & Fergus 2013):
conv1 7x7/2 96 -> LRN -> pool, conv2 5x5/2 256 -> LRN -> pool, conv3..5 3x3, pool,
full6 4096 -> dropout, full7 2048 -> dropout, classifier. Two channel layouts of conv3..5 exist:

* `TWO_STREAM` (default, name "clarifai"): 512, 512, 512 and full7 2048, as we read Fig. 1 of the
  two-stream paper. NOT verified against the PDF in this project: check before citing.
* `ZF` (name "clarifai_zf"): 384, 384, 256 (ZFNet's widths), also with full7 2048, as the project
  brief describes the ClarifaiNet variant.

Geometry (not given in the two-stream paper, taken from ZFNet so that a 224 input gives ZF's
6x6 map before full6): conv1 pad 1 (224 -> 110), MAX 3x3/s2 ceil pools (110 -> 55, 26 -> 13,
13 -> 6), conv2 pad 0 (55 -> 26), conv3..5 pad 1. LRN uses the AlexNet/Caffe settings
(size 5, alpha 1e-4, beta 0.75). The two-stream temporal net drops the second LRN
("to reduce memory consumption"); `norm2=False` gives that variant.

Dropout: full6 keeps `hidden_dropout` (0.5, our choice); TSN's ratio (0.8 RGB / 0.7 flow) is the
dropout directly before the classifier, after full7.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prototxt_port.caffe_layers import CaffeDropout
from tsn.models.units import ConvReLU, caffe_lrn, caffe_max_pool


@dataclass(frozen=True)
class ClarifaiSpec:
    """Widths of the ClarifaiNet-style net."""

    conv: tuple[int, int, int, int, int]  # output channels of conv1..conv5
    fc6: int  # full6 width
    fc7: int  # full7 width (the feature dimension fed to the classifier)


TWO_STREAM = ClarifaiSpec(conv=(96, 256, 512, 512, 512), fc6=4096, fc7=2048)
ZF = ClarifaiSpec(conv=(96, 256, 384, 384, 256), fc6=4096, fc7=2048)
POOL5_SIZE = 6  # spatial size before full6 for a 224x224 input (see module docstring)


class ClarifaiNet(nn.Module):
    """ClarifaiNet-style net: 224x224 input, fc7 features, dropout, fc."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 101,
        dropout: float = 0.8,
        spec: ClarifaiSpec = TWO_STREAM,
        norm2: bool = True,
        hidden_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.spec = spec
        self.feature_dim = spec.fc7
        c1, c2, c3, c4, c5 = spec.conv
        self.conv1 = ConvReLU(in_channels, c1, 7, 2, 1)
        self.norm1 = caffe_lrn()
        self.pool1 = caffe_max_pool(3, 2)
        self.conv2 = ConvReLU(c1, c2, 5, 2, 0)
        self.norm2 = caffe_lrn() if norm2 else nn.Identity()
        self.pool2 = caffe_max_pool(3, 2)
        self.conv3 = ConvReLU(c2, c3, 3, 1, 1)
        self.conv4 = ConvReLU(c3, c4, 3, 1, 1)
        self.conv5 = ConvReLU(c4, c5, 3, 1, 1)
        self.pool5 = caffe_max_pool(3, 2)
        self.fc6 = nn.Linear(c5 * POOL5_SIZE * POOL5_SIZE, spec.fc6)
        self.drop6 = CaffeDropout(hidden_dropout)
        self.fc7 = nn.Linear(spec.fc6, spec.fc7)
        self.dropout = CaffeDropout(dropout)  # drop7, directly before the classifier
        self.fc = nn.Linear(spec.fc7, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch (N, C, 224, 224) -> full7 features after ReLU (N, fc7)."""
        x = self.pool1(self.norm1(self.conv1(x)))  # N x 96 x 110 x 110 -> 55 x 55
        x = self.pool2(self.norm2(self.conv2(x)))  # N x 256 x 26 x 26 -> 13 x 13
        x = self.pool5(self.conv5(self.conv4(self.conv3(x))))  # N x c5 x 13 x 13 -> 6 x 6
        x = self.drop6(torch.relu(self.fc6(x.flatten(1))))  # N x 4096
        return torch.relu(self.fc7(x))  # N x fc7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch (N, C, 224, 224) -> logits (N, num_classes)."""
        return self.fc(self.dropout(self.forward_features(x)))


def clarifai_zf(in_channels: int = 3, num_classes: int = 101, dropout: float = 0.8) -> ClarifaiNet:
    """ClarifaiNet with ZFNet's conv3..5 widths (384, 384, 256)."""
    return ClarifaiNet(in_channels, num_classes, dropout, spec=ZF)
