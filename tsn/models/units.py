"""Caffe-style building blocks shared by the non-BN backbones (GoogLeNet, VGG-16, ClarifaiNet).

These networks predate batch normalisation: a prototxt "unit" is Convolution (with bias, Caffe's
default `bias_term: true`) followed by an in-place ReLU. The unit keeps its convolution under
`.conv` so that every backbone exposes its first convolution as `model.conv1.conv`, the same path
as BN-Inception's `ConvBNReLU` (cross-modality init and the flow lr_mult 5/10 rule use it).
"""

from __future__ import annotations

import torch
from torch import nn


class ConvReLU(nn.Module):
    """Convolution (with bias) -> in-place ReLU, as one prototxt conv + relu pair."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, pad: int = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, pad, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def caffe_lrn(local_size: int = 5, alpha: float = 1e-4, beta: float = 0.75) -> nn.LocalResponseNorm:
    """Caffe LRN, ACROSS_CHANNELS: x / (k + alpha/n * sum_{window} x^2)^beta with k = 1.

    Caffe's LRNParameter defaults are local_size 5, alpha 1, beta 0.75, k 1; the ImageNet nets
    (bvlc_googlenet, AlexNet/ZF-style) set alpha 1e-4. PyTorch's LocalResponseNorm also divides
    alpha by the window size and zero-pads the channel window, so the two agree exactly.
    """
    return nn.LocalResponseNorm(local_size, alpha=alpha, beta=beta, k=1.0)


def caffe_max_pool(kernel: int, stride: int, pad: int = 0) -> nn.MaxPool2d:
    """Caffe max pooling: PoolingParameter has no round mode, output size is always ceil'ed."""
    return nn.MaxPool2d(kernel, stride, pad, ceil_mode=True)
