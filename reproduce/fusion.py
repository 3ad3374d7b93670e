"""`make fusion`: the headline two- and three-stream fusions of the release.

RGB + flow at 1 : 1.5 (release README) is Table 3's "Average" row (TSN K=3, average consensus,
the release default); RGB + flow + warped flow at 1 : 1 : 0.5 (issue #5) is Table 2's
"Optical Flow + Warped Flow + RGB" row. The rows are the tables' own (table, base and all), so
their runs are reused and their results are reported under those tables.
"""

from __future__ import annotations

from reproduce import table2, table3
from reproduce.base import Row

ROWS: dict[str, Row] = {
    "RGB + Flow": table3.ROWS["Average"],
    "RGB + Flow + Warped Flow": table2.ROWS["Optical Flow + Warped Flow + RGB"],
}
SYNTHETIC_ROWS = ("RGB + Flow",)  # the synthetic set has no warped flow
