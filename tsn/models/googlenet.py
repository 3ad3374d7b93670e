"""GoogLeNet (Szegedy et al. 2015, Inception v1) as Caffe's bvlc_googlenet, for TSN Table 4.

TSN uses the network as a per-snippet backbone: the two auxiliary classifiers (loss1/loss2) of
the ImageNet training net are left out, and the 1000-way `loss3/classifier` is replaced by the
action classifier `.fc`. Caffe semantics kept: every conv has a bias and a ReLU, no BN; LRN
(size 5, alpha 1e-4, beta 0.75) after pool1 and after conv2/3x3; max pools are ceil-mode;
pool5 is AVE 7x7/s1.

Dropout: bvlc_googlenet has one dropout (0.4) between pool5 and the classifier; TSN's
"dropout before the classifier" (0.8 RGB / 0.7 flow, paper sec. 3.2) takes exactly that place,
so the backbone's `dropout` argument replaces the 0.4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prototxt_port.caffe_layers import CaffeDropout
from tsn.models.units import ConvReLU, caffe_lrn, caffe_max_pool


@dataclass(frozen=True)
class InceptionV1Spec:
    """Output channels of one inception block, in bvlc_googlenet's branch names."""

    c1x1: int  # inception_Xy/1x1
    c3x3_reduce: int  # inception_Xy/3x3_reduce
    c3x3: int  # inception_Xy/3x3 (pad 1)
    c5x5_reduce: int  # inception_Xy/5x5_reduce
    c5x5: int  # inception_Xy/5x5 (pad 2)
    pool_proj: int  # inception_Xy/pool_proj after MAX 3x3/s1/p1


# (input channels, spec) per block; Szegedy et al. 2015 Table 1.
BLOCKS: dict[str, tuple[int, InceptionV1Spec]] = {
    "inception_3a": (192, InceptionV1Spec(64, 96, 128, 16, 32, 32)),
    "inception_3b": (256, InceptionV1Spec(128, 128, 192, 32, 96, 64)),
    "inception_4a": (480, InceptionV1Spec(192, 96, 208, 16, 48, 64)),
    "inception_4b": (512, InceptionV1Spec(160, 112, 224, 24, 64, 64)),
    "inception_4c": (512, InceptionV1Spec(128, 128, 256, 24, 64, 64)),
    "inception_4d": (512, InceptionV1Spec(112, 144, 288, 32, 64, 64)),
    "inception_4e": (528, InceptionV1Spec(256, 160, 320, 32, 128, 128)),
    "inception_5a": (832, InceptionV1Spec(256, 160, 320, 32, 128, 128)),
    "inception_5b": (832, InceptionV1Spec(384, 192, 384, 48, 128, 128)),
}
# A stride-2 max pool (pool3/3x3_s2, pool4/3x3_s2) follows these blocks.
_POOL_AFTER = {"inception_3b", "inception_4e"}


class InceptionV1Block(nn.Module):
    """One inception block; concat order 1x1, 3x3, 5x5, pool_proj (bvlc_googlenet)."""

    def __init__(self, c_in: int, spec: InceptionV1Spec) -> None:
        super().__init__()
        self.b1x1 = ConvReLU(c_in, spec.c1x1, 1)
        self.b3x3_reduce = ConvReLU(c_in, spec.c3x3_reduce, 1)
        self.b3x3 = ConvReLU(spec.c3x3_reduce, spec.c3x3, 3, 1, 1)
        self.b5x5_reduce = ConvReLU(c_in, spec.c5x5_reduce, 1)
        self.b5x5 = ConvReLU(spec.c5x5_reduce, spec.c5x5, 5, 1, 2)
        self.pool = caffe_max_pool(3, 1, 1)
        self.pool_proj = ConvReLU(c_in, spec.pool_proj, 1)
        self.out_channels = spec.c1x1 + spec.c3x3 + spec.c5x5 + spec.pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [
                self.b1x1(x),
                self.b3x3(self.b3x3_reduce(x)),
                self.b5x5(self.b5x5_reduce(x)),
                self.pool_proj(self.pool(x)),
            ],
            dim=1,
        )


class GoogLeNet(nn.Module):
    """Inception v1 without auxiliary heads: 224x224 input, 1024-d pool5, dropout, fc."""

    feature_dim = 1024

    def __init__(self, in_channels: int = 3, num_classes: int = 101, dropout: float = 0.8) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.conv1 = ConvReLU(in_channels, 64, 7, 2, 3)  # conv1/7x7_s2
        self.pool1 = caffe_max_pool(3, 2)  # pool1/3x3_s2
        self.norm1 = caffe_lrn()  # pool1/norm1
        self.conv2_reduce = ConvReLU(64, 64, 1)  # conv2/3x3_reduce
        self.conv2 = ConvReLU(64, 192, 3, 1, 1)  # conv2/3x3
        self.norm2 = caffe_lrn()  # conv2/norm2
        self.pool2 = caffe_max_pool(3, 2)  # pool2/3x3_s2
        self.blocks = nn.ModuleDict({n: InceptionV1Block(c, s) for n, (c, s) in BLOCKS.items()})
        self.pool_s2 = caffe_max_pool(3, 2)  # pool3/3x3_s2 and pool4/3x3_s2 (no parameters)
        self.global_pool = nn.AvgPool2d(7, 1, 0, ceil_mode=True)  # pool5/7x7_s1
        self.dropout = CaffeDropout(dropout)  # pool5/drop_7x7_s1 (0.4 in the ImageNet net)
        self.fc = nn.Linear(self.feature_dim, num_classes)  # replaces loss3/classifier

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch (N, C, 224, 224) -> pool5 features (N, 1024)."""
        x = self.norm1(self.pool1(self.conv1(x)))  # N x 64 x 56 x 56
        x = self.pool2(self.norm2(self.conv2(self.conv2_reduce(x))))  # N x 192 x 28 x 28
        for name, block in self.blocks.items():  # 3a, 3b: 28; 4a..4e: 14; 5a, 5b: 7
            x = block(x)
            if name in _POOL_AFTER:
                x = self.pool_s2(x)
        return self.global_pool(x).flatten(1)  # N x 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch (N, C, 224, 224) -> logits (N, num_classes)."""
        return self.fc(self.dropout(self.forward_features(x)))
