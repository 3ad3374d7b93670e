"""Layers whose numerics follow the TSN Caffe fork rather than PyTorch's defaults.

Only the BN layer needs its own module: the fork's `BN` type (bn_layer.cpp,
docs/caffe_release.md#bn-layer) keeps four blobs [scale, shift, running mean, running variance],
uses the *biased* batch variance both to normalise and in the moving average, weights the old
running value by `bn_param.momentum` (0.9, i.e. PyTorch momentum 0.1), and can be `frozen`: running
statistics in TRAIN too, with scale/shift learning rates forced to 0 (this is the release's "partial
BN", docs/caffe_release.md#partial-bn).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CaffeBatchNorm(nn.Module):
    """The TSN fork's `BN` layer: y = scale * (x - mean) / sqrt(var + eps) + shift."""

    def __init__(
        self, num_features: int, eps: float = 1e-5, momentum: float = 0.9, frozen: bool = False
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps  # bn_param.eps default 1e-5; no TSN prototxt sets it
        self.momentum = momentum  # weight of the OLD running value (bn_param.momentum)
        self.weight = nn.Parameter(torch.ones(num_features))  # blob 0: scale (slope_filler 1)
        self.bias = nn.Parameter(torch.zeros(num_features))  # blob 1: shift (bias_filler 0)
        self.register_buffer("running_mean", torch.zeros(num_features))  # blob 2
        # blob 3 is the running *variance*; Caffe initialises it to 1 when frozen, 0 otherwise.
        self.register_buffer("running_var", torch.full((num_features,), 1.0 if frozen else 0.0))
        self.frozen = False
        self.set_frozen(frozen)

    def set_frozen(self, frozen: bool, freeze_affine: bool | None = None) -> None:
        """Use running statistics in training too; by default also stop scale/shift learning.

        `freeze_affine=None` follows the fork (`frozen: true` forces lr_mult 0 on scale and
        shift); pass False for the paper's partial BN, which freezes only the statistics.
        """
        self.frozen = frozen
        trainable = not (frozen if freeze_affine is None else freeze_affine)
        self.weight.requires_grad_(trainable)
        self.bias.requires_grad_(trainable)

    def caffe_multipliers(self) -> dict[str, tuple[float, float]]:
        """(lr_mult, decay_mult) of scale and shift: 1/0 as the train_val prototxts set them,
        0/0 when the affine part is frozen (`frozen: true` forces it in bn_layer.cpp)."""
        mult = (1.0, 0.0) if self.weight.requires_grad else (0.0, 0.0)
        return {"weight": mult, "bias": mult}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.frozen or not self.training:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
            )
        # Batch statistics over (N, H, W); F.batch_norm normalises with the biased variance.
        y = F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        with torch.no_grad():
            dims = [d for d in range(x.dim()) if d != 1]
            # float32 statistics also under bf16 autocast (no copy when x is float32)
            var, mean = torch.var_mean(x.detach().float(), dim=dims, correction=0)
            # Caffe: running = momentum * running + (1 - momentum) * batch, biased variance.
            self.running_mean.mul_(self.momentum).add_(mean, alpha=1.0 - self.momentum)
            self.running_var.mul_(self.momentum).add_(var, alpha=1.0 - self.momentum)
        return y

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, frozen={self.frozen}"
        )


class CaffeDropout(nn.Module):
    """Caffe's inverted dropout: keep with probability 1-p and scale by float32(1/(1-p)).

    Caffe stores `dropout_ratio` as float32 and computes the scale from it, so p=0.8 gives
    5.0000005 rather than PyTorch's 5.0. `forced_mask`, when set, replaces the random
    multiplier (mask * scale); the golden backward fixture injects Caffe's own mask this way.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout ratio must be in [0, 1), got {p}")
        self.p = p
        p32 = torch.tensor(p, dtype=torch.float32)
        self.scale = float((1.0 / (1.0 - p32.double())).float())
        self.forced_mask: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.forced_mask is not None:
            return x * self.forced_mask.to(dtype=x.dtype, device=x.device)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p)
        return x * (keep * self.scale)

    def extra_repr(self) -> str:
        return f"p={self.p}, scale={self.scale!r}"
