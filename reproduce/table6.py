"""Table 6: TSN with 2 and 3 modalities, mean over the 3 splits of UCF101 and HMDB51."""

from __future__ import annotations

from reproduce.base import Cell, Row, Stream, rows

TABLE = 6
BASE = ("model.num_segments=3", "model.consensus=avg", "model.init=imagenet")
_X = ("model.init=cross_modality",)
RGB, FLOW, WARP = Stream("rgb"), Stream("flow", _X), Stream("warped_flow", _X)
_ALL = {"splits": (1, 2, 3)}  # DATA= picks ucf101 or hmdb51

ROWS: dict[str, Row] = rows(
    TABLE, BASE,
    Row("TSN (2 modalities)", (Cell("fused", (RGB, FLOW), (1.0, 1.5)),), **_ALL),
    Row("TSN (3 modalities)", (Cell("fused", (RGB, FLOW, WARP), (1.0, 1.0, 0.5)),), **_ALL),
)

SYNTHETIC_ROWS = ("TSN (2 modalities)",)  # the synthetic set has no warped flow by default
