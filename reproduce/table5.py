"""Table 5: components added left to right (UCF101 split 1, two-stream fused only).

The runs are those of Table 1 (rows 3-5) and Table 4 (BN-Inception+TSN), so they are reused.
"""

from __future__ import annotations

from reproduce import table1, table4
from reproduce.base import Context, Row, run_row

TABLE = 5


def _fused_only(name: str, source: Row) -> Row:
    return Row(name, tuple(c for c in source.cells if c.column == "two_stream"), source.note)


ROWS: dict[str, tuple[Row, tuple[str, ...]]] = {
    "Basic Two-Stream": (_fused_only("Basic Two-Stream", table1.ROWS["Pre-train Spatial"]),
                         table1.BASE),
    "Cross-Modality Pre-training": (
        _fused_only("Cross-Modality Pre-training",
                    table1.ROWS["+ Cross modality pre-training"]), table1.BASE),
    "Partial BN with dropout": (
        _fused_only("Partial BN with dropout", table1.ROWS["+ Partial BN with dropout"]),
        table1.BASE),
    "Temporal Segment Networks": (
        _fused_only("Temporal Segment Networks", table4.ROWS["BN-Inception+TSN"]),
        table4.BASE),
}


def run(row: tuple[Row, tuple[str, ...]], ctx: Context) -> list[dict]:
    """Train/test/fuse what the row needs (reusing Table 1/4 runs); measured result rows."""
    r, base = row
    return run_row(TABLE, r, base, ctx)
