"""Table 3: segmental consensus functions (UCF101 split 1, BN-Inception TSN, K=3)."""

from __future__ import annotations

from reproduce.base import Row, rows, two_stream

TABLE = 3
BASE = ("model.num_segments=3", "model.init=imagenet")
_FLOW_INIT = ("model.init=cross_modality",)

ROWS: dict[str, Row] = rows(
    TABLE, BASE,
    two_stream("Max", ("model.consensus=max",), ("model.consensus=max", *_FLOW_INIT)),
    two_stream("Average", ("model.consensus=avg",), ("model.consensus=avg", *_FLOW_INIT)),
    two_stream("Weighted Average", ("model.consensus=weighted",),
               ("model.consensus=weighted", *_FLOW_INIT)),
)
