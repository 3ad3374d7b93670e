"""Table 2: input modalities with TSN (UCF101 split 1, BN-Inception, K=3, released recipe).

Base: the release (ImageNet init, cross-modality for the non-RGB streams, partial BN, dropout).
Fusion weights: RGB : flow = 1 : 1.5 (release README); with warped flow 1 : 1 : 0.5 (issue #5).
The paper gives no weights for the other combinations: 1 : 1 for pairs of the same kind and
RGB 1 : RGB diff 1 : flow 1.5 : warped 0.5 for all four are our choices, named in the report.
"""

from __future__ import annotations

from reproduce.base import Cell, Row, Stream, rows

TABLE = 2
BASE = ("model.num_segments=3", "model.consensus=avg", "model.init=imagenet")
RGB, DIFF = Stream("rgb"), Stream("rgb_diff")
FLOW, WARP = Stream("flow", ("model.init=cross_modality",)), \
    Stream("warped_flow", ("model.init=cross_modality",))

ROWS: dict[str, Row] = rows(
    TABLE, BASE,
    Row("RGB Image", (Cell("single", (RGB,)),)),
    Row("RGB Difference", (Cell("single", (DIFF,)),)),
    Row("RGB Image + RGB Difference", (Cell("fused", (RGB, DIFF), (1.0, 1.0)),)),
    Row("Optical Flow", (Cell("single", (FLOW,)),)),
    Row("Warped Flow", (Cell("single", (WARP,)),)),
    Row("Optical Flow + Warped Flow", (Cell("fused", (FLOW, WARP), (1.0, 1.0)),)),
    Row("Optical Flow + Warped Flow + RGB", (Cell("fused", (RGB, FLOW, WARP), (1.0, 1.0, 0.5)),)),
    Row("All Modalities", (Cell("fused", (RGB, DIFF, FLOW, WARP), (1.0, 1.0, 1.5, 0.5)),)),
)
# Rows runnable without warped flow (the synthetic set and `make demo` have no warped flow)
NO_WARP = ("RGB Image", "RGB Difference", "RGB Image + RGB Difference", "Optical Flow")
SYNTHETIC_ROWS = NO_WARP
