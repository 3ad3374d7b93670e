"""Build `results/paper.csv` (the expected numbers) from the shared paper_tables.csv.

The paper's numbers are never hand-typed here: this module transcribes the shared facts folder's
table ($TSN_SHARED/spec/paper_tables.csv, read as data) into the results schema
(results/README.md) and adds a `source` column naming the table, row and
column each number comes from. `python -m reproduce.paper` regenerates the file.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from pathlib import Path

from tsn.report import atomic_write_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]
PAPER_CSV = REPO_ROOT / "results" / "paper.csv"
# No tolerance column: whether a number is reproduced is decided by the reproduced number's 95%
# interval on its test set (tsn/stats.py, reproduce/compare.py), not by a fixed gap.
COLUMNS = ("table", "row", "column", "dataset", "split", "metric", "paper_value", "source",
           "note")
SPEC_COLUMNS = ("table", "row", "column", "value_pct", "dataset", "split", "note")


def shared_dir() -> Path:
    """The shared facts folder: $TSN_SHARED, else ../shared beside the checkout."""
    return Path(os.environ.get("TSN_SHARED", REPO_ROOT.parent / "shared"))


def paper_rows(spec_csv: str | Path) -> list[dict]:
    """Rows of results/paper.csv built from the shared paper_tables.csv."""
    spec_csv = Path(spec_csv)
    if not spec_csv.is_file():
        raise FileNotFoundError(f"{spec_csv}: spec table not found; set TSN_SHARED to the "
                                "folder holding spec/paper_tables.csv")
    with spec_csv.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != SPEC_COLUMNS:
            raise ValueError(f"{spec_csv}: expected columns {SPEC_COLUMNS}, "
                             f"got {reader.fieldnames}")
        rows = []
        for i, rec in enumerate(reader, start=2):
            try:
                value = float(rec["value_pct"])
            except ValueError:
                raise ValueError(f"{spec_csv}:{i}: value_pct {rec['value_pct']!r} is not a "
                                 "number") from None
            split = rec["split"]
            where = "mean of 3 splits" if split == "mean_of_3" else f"split {split}"
            rows.append({
                "table": int(rec["table"]), "row": rec["row"], "column": rec["column"],
                "dataset": rec["dataset"], "split": split, "metric": "mean_class_acc",
                "paper_value": value,
                "source": f"TSN ECCV 2016 Table {rec['table']}, row '{rec['row']}', column "
                          f"'{rec['column']}', {rec['dataset']} {where} "
                          f"(via spec/paper_tables.csv line {i})",
                "note": rec["note"],
            })
    return rows


def render(rows: list[dict]) -> str:
    """CSV text of `rows` in COLUMNS order (paper values printed exactly as in paper_tables.csv)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "paper_value": f"{row['paper_value']:g}"})
    return buf.getvalue()


def load_paper(path: str | Path = PAPER_CSV) -> list[dict]:
    """Read results/paper.csv back (paper_value as a float, table as an int)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; regenerate it with `python -m reproduce.paper`")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["table"] = int(row["table"])
        row["paper_value"] = float(row["paper_value"])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Regenerate results/paper.csv from $TSN_SHARED/spec/paper_tables.csv."""
    out = Path(argv[0]) if argv else PAPER_CSV
    rows = paper_rows(shared_dir() / "spec" / "paper_tables.csv")
    atomic_write_bytes(out, render(rows).encode())
    print(f"wrote {len(rows)} paper numbers to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
