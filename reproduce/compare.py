"""Put reproduced numbers next to the paper's and write `results/<table>.{md,csv,png}`.

One function (`compare`) joins measured rows with results/paper.csv on (table, row, column); it
is used by `make tableN` (through reproduce.__main__), by `python -m reproduce.compare` (prints
the diff table; `--check` exits 1 when a row is out of tolerance) and by the tests.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from reproduce.paper import PAPER_CSV, load_paper
from tsn import report

# Columns of results/<table>.csv (style anchors 8.9): the number, the paper's, the difference,
# and for each row the protocol that produced it.
CSV_COLUMNS = ("table", "row", "column", "dataset", "split", "metric", "value", "paper_value",
               "delta", "within_tolerance", "top1", "protocol", "schedule", "batch", "init",
               "arch", "segments", "consensus", "partial_bn", "precision", "clip_mode", "profile",
               "scores", "commit",
               "device", "torch", "date")
MD_COLUMNS = ("table", "row", "column", "value", "paper_value", "delta", "within_tolerance", "top1",
              "protocol", "schedule", "batch", "init", "arch", "segments", "partial_bn",
              "precision", "clip_mode", "dataset", "split", "profile", "commit")
SYNTHETIC_CLASSES = ("The synthetic classes come in pairs that need one cue each (tsn.data.synth): "
                     "colour (RGB), object motion (flow), object motion under a camera pan "
                     "(warped flow) and the order of two shapes (no stream with average "
                     "consensus), so each single stream can separate only some pairs and the "
                     "fusion is expected to beat both.")
SYNTHETIC_WARNING = ("**Synthetic data: these numbers are NOT comparable to the paper.** The "
                     "synthetic dataset only checks that the pipeline runs end to end; the paper "
                     "column is shown for orientation only and no delta is computed.")


def compare(measured: Sequence[dict], paper: Sequence[dict]) -> list[dict]:
    """Measured rows + paper_value, delta (pp) and within_tolerance from paper.csv.

    A measured row needs table, row, column, dataset, value (in %). A delta is only computed
    when the dataset (and split, unless the paper row is a mean over splits) matches the paper
    row; otherwise the row says why it is not comparable.
    """
    index, by_cell = {}, {}
    for p in paper:  # Table 6 has the same row/column for two datasets
        cell = (int(p["table"]), p["row"], p["column"])
        index[(*cell, p["dataset"])] = p
        if cell not in by_cell or p["dataset"] == "ucf101":  # other data shows UCF101's number
            by_cell[cell] = p
    out = []
    for m in measured:
        cell = (int(m["table"]), m["row"], m["column"])
        p = index.get((*cell, m["dataset"]), by_cell.get(cell))
        row = dict(m)
        if p is None:
            row.update(paper_value=None, delta=None, within_tolerance="no paper number")
        else:
            row["paper_value"] = p["paper_value"]
            same_split = p["split"] == "mean_of_3" or str(m.get("split", "")) == p["split"]
            if m["dataset"] != p["dataset"] or not same_split:
                row.update(delta=None, within_tolerance=f"n/a ({m['dataset']} split "
                                                         f"{m.get('split', '')}, paper "
                                                         f"{p['dataset']} split {p['split']})")
            else:
                row["delta"] = float(m["value"]) - p["paper_value"]
                row["within_tolerance"] = "yes" if abs(row["delta"]) <= p["tolerance"] else "no"
        out.append(row)
    return out


def fusion_gains(rows: Sequence[dict]) -> list[str]:
    """One line per row with a fused column: fused value against its best single stream."""
    lines = []
    for name in dict.fromkeys(r["row"] for r in rows):
        cells = {r["column"]: float(r["value"]) for r in rows if r["row"] == name}
        singles = [cells[c] for c in ("spatial", "temporal") if c in cells]
        if "two_stream" in cells and len(singles) == 2:
            gain = cells["two_stream"] - max(singles)
            verdict = "beats" if gain > 0 else "does NOT beat"
            lines.append(f"{name}: the fused two-stream score ({cells['two_stream']:.2f}) "
                         f"{verdict} the best single stream ({max(singles):.2f}) by "
                         f"{gain:+.2f} pp.")
    return lines


def write_table_report(name: str, rows: Sequence[dict], out_dir: str | Path,
                       record: dict | None = None, notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write `<out_dir>/<name>.md`, `.csv` and `.png` for compared rows; returns the paths."""
    out_dir = Path(out_dir)
    notes = list(notes)
    if any(r.get("dataset") == "synthetic" for r in rows):
        notes[:0] = [SYNTHETIC_WARNING, SYNTHETIC_CLASSES]
    notes += fusion_gains(rows)
    record = record or {}
    env = {"device": record.get("hardware", ""),
           "torch": record.get("versions", {}).get("torch", ""), "date": record.get("date", "")}
    rows = [{**env, **r} for r in rows]
    paths = {"csv": report.write_csv(out_dir / f"{name}.csv", rows, CSV_COLUMNS)}
    labels = [f"{r['row']} ({r['column']})" for r in rows]
    paths["png"] = report.write_bar_chart(
        out_dir / f"{name}.png", labels, [float(r["value"]) for r in rows],
        [r.get("paper_value") for r in rows], f"{name}: reproduced vs paper (mean class acc.)")
    paths["md"] = report.write_markdown(
        out_dir / f"{name}.md", f"{name}: reproduced vs paper", rows, MD_COLUMNS,
        notes=notes + ["value / paper_value / delta: mean class accuracy in % (delta in "
                       "percentage points); top1: overall video accuracy in %. protocol: test "
                       "frames x crops and crop aggregation; schedule: solver preset (released "
                       "= the Caffe release's solver, paper = the paper's text, custom = a reduced "
                       "profile); partial_bn: release (BN statistics and affine frozen after the "
                       "first BN), paper (statistics only) or none; init: what was loaded; "
                       "precision: fp32 = IEEE float32 as the release, tf32 / bf16 = faster "
                       "deviations (tsn/engine/precision.py); clip_mode: release = the gradient "
                       "clip compares the norm of the gradient averaged over GPUs and iter_size, "
                       "as the release's 4 GPUs x iter_size 1, caffe_iter_size = Caffe's literal "
                       "rule (the iter_size sum; a tighter clip when iter_size > 1)."],
        record=record, image=paths["png"].name)
    return paths


def read_measured(path: str | Path) -> list[dict]:
    """Read a results/<table>.csv back as dicts (value as float)."""
    with Path(path).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["value"] = float(r["value"])
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m reproduce.compare results/table2.csv [--check]`: print the diff table."""
    parser = argparse.ArgumentParser(prog="python -m reproduce.compare", description=__doc__)
    parser.add_argument("results_csv", nargs="+")
    parser.add_argument("--paper", default=str(PAPER_CSV))
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a comparable row is outside the tolerance")
    args = parser.parse_args(argv)
    rows = compare([r for p in args.results_csv for r in read_measured(p)],
                   load_paper(args.paper))
    print(report.markdown_table(rows, ("table", "row", "column", "value", "paper_value", "delta",
                                       "within_tolerance")))
    failed = [r for r in rows if r["within_tolerance"] == "no"]
    if args.check and failed:
        print(f"{len(failed)} row(s) outside tolerance", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
