"""`make fusion`: the headline two- and three-stream fusions of the release.

RGB + flow at 1 : 1.5 (release README) is Table 3's "Average" row (TSN K=3, average consensus,
the release default); RGB + flow + warped flow at 1 : 1 : 0.5 (issue #5) is Table 2's
"Optical Flow + Warped Flow + RGB" row. The runs are the tables' own, so they are reused.
"""

from __future__ import annotations

from reproduce import table2, table3
from reproduce.base import Context, Row, run_row

ROWS: dict[str, tuple[int, Row, tuple[str, ...]]] = {
    "RGB + Flow": (table3.TABLE, table3.ROWS["Average"], table3.BASE),
    "RGB + Flow + Warped Flow": (table2.TABLE, table2.ROWS["Optical Flow + Warped Flow + RGB"],
                                 table2.BASE),
}
SYNTHETIC_ROWS = ("RGB + Flow",)  # the synthetic set has no warped flow


def run(row: tuple[int, Row, tuple[str, ...]], ctx: Context) -> list[dict]:
    """Train/test/fuse what the row needs; measured result rows (under their paper table)."""
    table, r, base = row
    return run_row(table, r, base, ctx)
