"""Segmental consensus G: combine the K per-segment class scores of one video (paper sec. 3.1).

All three act on the raw logits *before* softmax, as the release does: train_val's
`segment_consensus` is an AVE Pooling (kernel_h 3, kernel_w 1) over the reshaped fc output
(-1, 1, 3, 101) and SoftmaxWithLoss comes after it (docs/caffe_release.md#tsn-head).

* "avg" (release default): mean over segments.
* "max": max over segments, per class (the gradient flows to the arg-max segment only).
* "weighted": learned per-segment weights w_k, G = sum_k w_k * F_k. The paper names the
  function but not its parametrisation and no released prototxt has one; we use one free weight
  per segment, shared by all classes, initialised uniformly to 1/K so training starts exactly at
  "avg". The weights are not constrained to sum to 1 (a linear layer over the segment axis, the
  form a Caffe net would use); the parameter is `weight`, shape (K,).
"""

from __future__ import annotations

import torch
from torch import nn


class SegmentConsensus(nn.Module):
    """Base of the consensus functions: (N, K, C) segment scores -> (N, C) video scores."""

    def __init__(self, num_segments: int = 3) -> None:
        super().__init__()
        self.num_segments = num_segments


class AvgConsensus(SegmentConsensus):
    """Mean of the segment scores: (N, K, C) -> (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=1)


class MaxConsensus(SegmentConsensus):
    """Per-class maximum over segments: (N, K, C) -> (N, C)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=1)


class WeightedConsensus(SegmentConsensus):
    """Learned weighted sum over segments, weights initialised to 1/K: (N, K, C) -> (N, C)."""

    def __init__(self, num_segments: int = 3) -> None:
        super().__init__(num_segments)
        self.weight = nn.Parameter(torch.full((num_segments,), 1.0 / num_segments))

    def caffe_multipliers(self) -> dict[str, tuple[float, float]]:
        """Not in the release (AVE consensus); our choice: learn at the base lr, no decay."""
        return {"weight": (1.0, 0.0)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self.num_segments:
            raise ValueError(
                f"weighted consensus was built for {self.num_segments} segments, "
                f"got scores of shape {tuple(x.shape)} (N, K, C): build the model with the K "
                "it is fed, or use 'avg'/'max', which accept any K"
            )
        return torch.einsum("nkc,k->nc", x, self.weight)

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}"


# name -> class taking num_segments: `model.consensus` values. A new consensus is a class here and
# one entry below (a parameter-free one needs nothing else; docs/architecture.md).
CONSENSUS: dict[str, type[SegmentConsensus]] = {
    "avg": AvgConsensus,
    "max": MaxConsensus,
    "weighted": WeightedConsensus,
}
CONSENSUS_NAMES = tuple(CONSENSUS)


def build_consensus(name: str, num_segments: int) -> nn.Module:
    """The consensus module called `name` (a CONSENSUS key) for K = num_segments."""
    if name not in CONSENSUS:
        raise ValueError(f"unknown consensus {name!r}: choose one of {', '.join(CONSENSUS)}")
    return CONSENSUS[name](num_segments)
