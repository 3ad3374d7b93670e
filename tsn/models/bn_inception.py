"""BN-Inception exactly as the TSN prototxts define it (docs/caffe_release.md#bn-inception).

Readable PyTorch for users who never touch Caffe. Every tensor of the state dict corresponds
to one Caffe blob of `tsn_bn_inception_{rgb,flow}_{train_val,deploy}.prototxt`;
`tsn.weights.bn_inception_layout.caffe_blob_map()` lists that correspondence (conversion).

Caffe semantics kept here: every convolution has a bias (prototxt default bias_term: true)
even though a BN follows; BN is the fork's `BN` layer (CaffeBatchNorm, eps 1e-5); max pools
use ceil mode (PoolingParameter has no round mode, pooling_layer.cpp); the 3x3/s1/p1 average pools
count the padding (divide by 9); the head is global_pool -> dropout -> fc-action.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prototxt_port.caffe_layers import CaffeBatchNorm, CaffeDropout


class ConvBNReLU(nn.Module):
    """A prototxt unit: Convolution (with bias) -> BN -> in-place ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, pad: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, pad, bias=True)
        self.bn = CaffeBatchNorm(c_out, frozen=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


@dataclass(frozen=True)
class BlockSpec:
    """Output channels of one inception block (0 = branch absent); names as in the prototxt."""

    c1x1: int  # inception_Xy/1x1 (absent in the reduction blocks 3c, 4e)
    c3x3_reduce: int
    c3x3: int
    double_reduce: int
    double_1: int  # double_3x3_1
    double_2: int  # double_3x3_2
    pool: str  # "avg" (3x3/s1/p1, counts padding), "max" (3x3/s1/p1) or "max_s2" (reduction)
    pool_proj: int  # 0 for the reduction blocks: the pooled input is concatenated directly


# Output channels per branch, in prototxt order (tsn_bn_inception_rgb_train_val.prototxt).
BLOCKS: dict[str, tuple[int, BlockSpec]] = {
    # name: (input channels, spec)
    "inception_3a": (192, BlockSpec(64, 64, 64, 64, 96, 96, "avg", 32)),
    "inception_3b": (256, BlockSpec(64, 64, 96, 64, 96, 96, "avg", 64)),
    "inception_3c": (320, BlockSpec(0, 128, 160, 64, 96, 96, "max_s2", 0)),
    "inception_4a": (576, BlockSpec(224, 64, 96, 96, 128, 128, "avg", 128)),
    "inception_4b": (576, BlockSpec(192, 96, 128, 96, 128, 128, "avg", 128)),
    "inception_4c": (576, BlockSpec(160, 128, 160, 128, 160, 160, "avg", 128)),
    "inception_4d": (608, BlockSpec(96, 128, 192, 160, 192, 192, "avg", 128)),
    "inception_4e": (608, BlockSpec(0, 128, 192, 192, 256, 256, "max_s2", 0)),
    "inception_5a": (1056, BlockSpec(352, 192, 320, 160, 224, 224, "avg", 128)),
    "inception_5b": (1024, BlockSpec(352, 192, 320, 192, 224, 224, "max", 128)),
}

class InceptionBlock(nn.Module):
    """One inception block; concat order 1x1, 3x3, double_3x3_2, pool_proj (or the pool itself)."""

    def __init__(self, c_in: int, spec: BlockSpec) -> None:
        super().__init__()
        reduction = spec.pool == "max_s2"
        stride = 2 if reduction else 1
        self.b1x1 = ConvBNReLU(c_in, spec.c1x1, 1) if spec.c1x1 else None
        self.b3x3_reduce = ConvBNReLU(c_in, spec.c3x3_reduce, 1)
        self.b3x3 = ConvBNReLU(spec.c3x3_reduce, spec.c3x3, 3, stride, 1)
        self.double_3x3_reduce = ConvBNReLU(c_in, spec.double_reduce, 1)
        self.double_3x3_1 = ConvBNReLU(spec.double_reduce, spec.double_1, 3, 1, 1)
        self.double_3x3_2 = ConvBNReLU(spec.double_1, spec.double_2, 3, stride, 1)
        if spec.pool == "avg":
            # count_include_pad: Caffe's AVE pool divides by the full 3x3 window (pooling_layer.cpp)
            self.pool = nn.AvgPool2d(3, 1, 1, ceil_mode=True, count_include_pad=True)
        elif spec.pool == "max":
            self.pool = nn.MaxPool2d(3, 1, 1, ceil_mode=True)
        else:
            self.pool = nn.MaxPool2d(3, 2, 0, ceil_mode=True)  # 28->14, 14->7 (floor: 13, 6)
        self.pool_proj = ConvBNReLU(c_in, spec.pool_proj, 1) if spec.pool_proj else None
        self.out_channels = spec.c1x1 + spec.c3x3 + spec.double_2 + (spec.pool_proj or c_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = [] if self.b1x1 is None else [self.b1x1(x)]
        branches.append(self.b3x3(self.b3x3_reduce(x)))
        branches.append(self.double_3x3_2(self.double_3x3_1(self.double_3x3_reduce(x))))
        pooled = self.pool(x)
        branches.append(pooled if self.pool_proj is None else self.pool_proj(pooled))
        return torch.cat(branches, dim=1)


class BNInception(nn.Module):
    """BN-Inception of the TSN release: 224x224 input, 1024-d global pool, dropout, fc-action."""

    def __init__(self, in_channels: int = 3, num_classes: int = 101, dropout: float = 0.8) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.conv1 = ConvBNReLU(in_channels, 64, 7, 2, 3)  # conv1/7x7_s2
        self.pool1 = nn.MaxPool2d(3, 2, 0, ceil_mode=True)  # pool1/3x3_s2: 112 -> 56
        self.conv2_reduce = ConvBNReLU(64, 64, 1)  # conv2/3x3_reduce
        self.conv2 = ConvBNReLU(64, 192, 3, 1, 1)  # conv2/3x3
        self.pool2 = nn.MaxPool2d(3, 2, 0, ceil_mode=True)  # pool2/3x3_s2: 56 -> 28
        self.blocks = nn.ModuleDict(
            {name: InceptionBlock(c_in, spec) for name, (c_in, spec) in BLOCKS.items()}
        )
        self.global_pool = nn.AvgPool2d(7, 1, 0, ceil_mode=True)
        self.dropout = CaffeDropout(dropout)  # in place on global_pool in the prototxt
        self.fc = nn.Linear(1024, num_classes)  # layer "fc-action"

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch (N, C, 224, 224) -> global_pool features (N, 1024)."""
        x = self.pool1(self.conv1(x))  # N x 64 x 56 x 56
        x = self.pool2(self.conv2(self.conv2_reduce(x)))  # N x 192 x 28 x 28
        for block in self.blocks.values():  # 3a..3c: 28 -> 14, 4a..4e: 14 -> 7, 5a, 5b
            x = block(x)
        return self.global_pool(x).flatten(1)  # N x 1024

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Image batch (N, C, 224, 224) -> fc-action logits (N, num_classes)."""
        return self.fc(self.dropout(self.forward_features(x)))
