"""Table 5: components added left to right (UCF101 split 1, two-stream fused only).

The runs are those of Table 1 (rows 3-5) and Table 4 (BN-Inception+TSN): each row keeps its
source row's base config, so the runs are reused.
"""

from __future__ import annotations

from dataclasses import replace

from reproduce import table1, table4
from reproduce.base import Row

TABLE = 5


def _fused_only(name: str, source: Row) -> Row:
    """The source row's fused cell under this table and name, with the source's base config."""
    return replace(source, name=name, table=TABLE,
                   cells=tuple(c for c in source.cells if c.column == "two_stream"))


ROWS: dict[str, Row] = {r.name: r for r in (
    _fused_only("Basic Two-Stream", table1.ROWS["Pre-train Spatial"]),
    _fused_only("Cross-Modality Pre-training", table1.ROWS["+ Cross modality pre-training"]),
    _fused_only("Partial BN with dropout", table1.ROWS["+ Partial BN with dropout"]),
    _fused_only("Temporal Segment Networks", table4.ROWS["BN-Inception+TSN"]),
)}
