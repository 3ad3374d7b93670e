"""Cross-modality pre-training (TSN paper sec. 3.2): ImageNet RGB weights for non-RGB inputs.

The first convolution's RGB kernel (out, 3, k, k) is averaged over its 3 input channels and the
mean is replicated over the new input channels; all other layers are copied unchanged.
No rescaling is applied (the paper describes none), so for a 10-channel flow stack the
response to a constant input is 10/3 of the RGB one; the following BN absorbs it.

Channel counts (TSN, `new_length` stacked frames x channels per frame):
* optical flow / warped flow: 5 x (x, y) = 10 channels, interleaved x1, y1, ..., x5, y5
  (VideoData layout, docs/caffe_release.md#sampling);
* RGB difference: 5 stacked differences of consecutive RGB frames = 5 x 3 = 15 channels
  (the paper stacks RGB differences; the release ships no RGB-difference net,
  docs/caffe_release.md#rgb-vs-flow-nets, so the count is ours: new_length 5, the same stack length
  as flow).
"""

from __future__ import annotations

import torch
from torch import nn


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first nn.Conv2d of `model` in module order (BN-Inception's conv1/7x7_s2)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d: cannot find its first conv")


def first_conv_key(model: nn.Module) -> str:
    """State-dict key of the first conv's weight, e.g. 'conv1.conv.weight'."""
    conv = first_conv(model)
    for name, module in model.named_modules():
        if module is conv:
            return f"{name}.weight"
    raise AssertionError("unreachable: first_conv returned a module not in named_modules")


def init_first_conv_from_rgb(rgb_weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """(out, 3, k, k) RGB kernel -> (out, in_channels, k, k): channel mean, replicated."""
    if rgb_weight.dim() != 4 or rgb_weight.shape[1] != 3:
        raise ValueError(
            f"cross-modality init needs an RGB first-conv weight of shape (out, 3, k, k), "
            f"got {tuple(rgb_weight.shape)}"
        )
    if in_channels < 1:
        raise ValueError(f"in_channels must be positive, got {in_channels}")
    mean = rgb_weight.mean(dim=1, keepdim=True)  # out x 1 x k x k
    return mean.expand(-1, in_channels, -1, -1).contiguous()
