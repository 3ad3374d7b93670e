"""The TSN wrapper (paper sec. 3.1): one backbone applied to K snippets, then segmental consensus.

Input layout follows Caffe's VideoData blob (docs/caffe_release.md#tsn-head): (N, K*L*C, H, W)
with segment-major channels (segment k, stacked frame l, channel c at index k*L*C + l*C + c).
The prototxt's `reshape_data` turns it into N*K snippet images, video-major and segment-minor
(video0-seg0, video0-seg1, ..., video1-seg0); the backbone (with its dropout and classifier)
scores each; `reshape_fc` regroups them to (N, K, classes); the consensus combines the K scores
BEFORE softmax (the loss applies softmax afterwards).

Glossary: K = `num_segments`, L = `new_length` (frames stacked per snippet: 1 for RGB, 5 for
flow), C = `channels_per_frame` (3 for RGB and RGB difference, 2 for flow x/y); the defaults
of each modality are the table in tsn/modality.py.
"""

from __future__ import annotations

import torch
from torch import nn

from tsn.models.consensus import build_consensus


class TSN(nn.Module):
    """Temporal Segment Network around a per-snippet backbone (shared weights over segments)."""

    def __init__(
        self,
        backbone: nn.Module,
        num_segments: int = 3,
        new_length: int = 1,
        channels_per_frame: int = 3,
        consensus: str = "avg",
    ) -> None:
        super().__init__()
        if num_segments < 1 or new_length < 1 or channels_per_frame < 1:
            raise ValueError(
                f"num_segments, new_length and channels_per_frame must be positive, got "
                f"{num_segments}, {new_length}, {channels_per_frame}"
            )
        self.backbone = backbone
        self.num_segments = num_segments
        self.new_length = new_length
        self.channels_per_frame = channels_per_frame
        self.consensus_name = consensus
        self.consensus = build_consensus(consensus, num_segments)
        self.init_record: dict = {}  # filled by build_tsn: how the weights were initialised

    @property
    def snippet_channels(self) -> int:
        """Channels of one snippet image: new_length * channels_per_frame."""
        return self.new_length * self.channels_per_frame

    def _check(self, x: torch.Tensor, channels: int, layout: str) -> None:
        if x.dim() != 4 or x.shape[1] != channels:
            raise ValueError(
                f"TSN input must be {layout} with {channels} channels (K={self.num_segments}, "
                f"new_length={self.new_length}, C={self.channels_per_frame}), "
                f"got shape {tuple(x.shape)}"
            )

    def segment_scores(self, x: torch.Tensor) -> torch.Tensor:
        """VideoData blob (N, K*L*C, H, W) -> per-segment logits (N, K, classes)."""
        self._check(x, self.num_segments * self.snippet_channels, "(N, K*L*C, H, W)")
        n, _, h, w = x.shape
        x = x.reshape(n * self.num_segments, self.snippet_channels, h, w)  # reshape_data
        scores = self.backbone(x)  # N*K x classes (backbone ends in dropout -> fc)
        return scores.reshape(n, self.num_segments, -1)  # reshape_fc: N x K x classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """VideoData blob (N, K*L*C, H, W) -> video logits after consensus (N, classes)."""
        return self.consensus(self.segment_scores(x))  # N x classes, before softmax

    def forward_snippets(self, x: torch.Tensor) -> torch.Tensor:
        """Test-time snippets (M, L*C, H, W) -> per-snippet logits (M, classes).

        The 25-frame x 10-crop protocol (eval_net.py) averages these outside the model.
        """
        self._check(x, self.snippet_channels, "(M, L*C, H, W)")
        return self.backbone(x)
