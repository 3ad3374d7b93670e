"""Put reproduced numbers next to the paper's and write `results/<table>.{md,csv,png}`.

One function (`compare`) joins measured rows with results/paper.csv on (table, row, column); it
is used by `make tableN` (through reproduce.__main__), by `python -m reproduce.compare` (prints
the diff table; `--check` exits 1 when the paper's number lies outside a row's interval) and by
the tests.

Every reproduced number carries the 95% interval of its test set (tsn/stats.py); a row is
"reproduced" when the paper's number lies inside it (`paper_in_interval`). Synthetic-data
reports put each stream against the ceiling the synthetic design allows instead
(reproduce/synthetic.py); the paper's numbers stay in their table, marked not comparable.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from reproduce import synthetic
from reproduce.paper import PAPER_CSV, load_paper
from tsn import report
from tsn.scores import load_scores
from tsn.stats import mcnemar_scores

# Columns of results/<table>.csv (style anchors 8.9): the number with its interval, the paper's,
# the difference, whether the paper lies in the interval, and the protocol behind each row.
CSV_COLUMNS = ("table", "row", "column", "dataset", "split", "metric", "value", "ci_low",
               "ci_high", "paper_value", "delta", "paper_in_interval", "top1", "protocol",
               "schedule", "batch", "init", "arch", "segments", "consensus", "partial_bn",
               "precision", "clip_mode", "flow", "streams", "profile", "scores", "commit",
               "device", "torch", "date")
MD_COLUMNS = ("table", "row", "column", "value (95% CI)", "paper_value", "delta",
              "paper_in_interval", "top1", "protocol", "schedule", "batch", "init", "arch",
              "segments", "partial_bn", "precision", "clip_mode", "dataset", "split", "profile",
              "commit")
INTERVAL_NOTE = ("value (95% CI): mean class accuracy and its 95% confidence interval. The "
                 "interval is the uncertainty that comes from the test set's finite size alone "
                 "(which videos happen to be in it), not from training randomness: another seed "
                 "or run of the same recipe would add its own spread. paper_in_interval: inside "
                 "when the paper's number lies in the interval (the number is reproduced), "
                 "outside when it does not; computed per class from binomial variances "
                 "(tsn/stats.py, docs/reproduce.md \"Intervals\").")
SYNTHETIC_WARNING = ("**Synthetic data: these numbers are NOT comparable to the paper.** The "
                     "paper's numbers (UCF101) appear only in the table, marked not comparable; "
                     "each stream is measured against the ceiling the synthetic design allows "
                     "(below), which is what the demo can teach.")


def _interval_text(row: dict) -> str:
    value = row.get("value")
    if value is None:
        return ""
    if row.get("ci_low") in (None, "") or row.get("ci_high") in (None, ""):
        return f"{float(value):.2f}"
    return f"{float(value):.2f} (95% CI {float(row['ci_low']):.2f}-{float(row['ci_high']):.2f})"


def compare(measured: Sequence[dict], paper: Sequence[dict]) -> list[dict]:
    """Measured rows + paper_value, delta (pp) and paper_in_interval from paper.csv.

    A measured row needs table, row, column, dataset, value (in %), and ci_low / ci_high (its
    95% interval, %). A delta and a verdict are only computed when the dataset (and split,
    unless the paper row is a mean over splits) matches the paper row; otherwise the row says
    why it is not comparable.
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
            row.update(paper_value=None, delta=None, paper_in_interval="no paper number")
        else:
            row["paper_value"] = p["paper_value"]
            same_split = p["split"] == "mean_of_3" or str(m.get("split", "")) == p["split"]
            if m["dataset"] != p["dataset"] or not same_split:
                row.update(delta=None, paper_in_interval=f"n/a ({m['dataset']} split "
                                                         f"{m.get('split', '')}, paper "
                                                         f"{p['dataset']} split {p['split']})")
            else:
                row["delta"] = float(m["value"]) - p["paper_value"]
                if m.get("ci_low") in (None, "") or m.get("ci_high") in (None, ""):
                    row["paper_in_interval"] = "no interval"
                else:
                    inside = float(m["ci_low"]) <= p["paper_value"] <= float(m["ci_high"])
                    row["paper_in_interval"] = "inside" if inside else "outside"
        row["value (95% CI)"] = _interval_text(row)
        out.append(row)
    return out


def _paired(row_a: dict, row_b: dict) -> str:
    """`; McNemar ...` between the first score files of two rows, or "" when not possible."""
    try:
        a, b = (load_scores(str(r["scores"]).split()[0]) for r in (row_a, row_b))
    except (KeyError, IndexError, OSError, ValueError):
        return ""
    if a.video_ids != b.video_ids:
        return ""
    return "; " + mcnemar_scores(a.scores, b.scores, a.labels).describe(
        row_a["column"], row_b["column"])


def fusion_gains(rows: Sequence[dict]) -> list[str]:
    """One line per row with a fused column: fused value against its best single stream, with
    the exact McNemar test of the two on the same videos when their score files are at hand."""
    lines = []
    for name in dict.fromkeys(r["row"] for r in rows):
        cells = {r["column"]: r for r in rows if r["row"] == name}
        singles = [cells[c] for c in ("spatial", "temporal") if c in cells]
        if "two_stream" in cells and len(singles) == 2:
            fused = cells["two_stream"]
            best = max(singles, key=lambda r: float(r["value"]))
            gain = float(fused["value"]) - float(best["value"])
            verdict = "beats" if gain > 0 else "does NOT beat"
            lines.append(f"{name}: the fused two-stream score ({float(fused['value']):.2f}) "
                         f"{verdict} the best single stream ({float(best['value']):.2f}) by "
                         f"{gain:+.2f} pp{_paired(fused, best)}.")
    return lines


def _display(rows: Sequence[dict]) -> list[dict]:
    """Rows as the markdown table shows them: a synthetic row's paper number marked."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("dataset") == "synthetic" and r.get("paper_value") is not None:
            r["paper_value"] = f"{float(r['paper_value']):.2f} (UCF101; not comparable)"
            r["paper_in_interval"] = "n/a: synthetic data"
        out.append(r)
    return out


def write_table_report(name: str, rows: Sequence[dict], out_dir: str | Path,
                       record: dict | None = None, notes: Sequence[str] = ()) -> dict[str, Path]:
    """Write `<out_dir>/<name>.md`, `.csv` and `.png` for compared rows; returns the paths.

    Real data: bars of ours (with intervals) next to the paper's. Synthetic data: each stream
    against its ceiling from the synthetic design, with the design and per-class sections
    (reproduce/synthetic.py); the paper's numbers only in the table, marked not comparable.
    """
    out_dir = Path(out_dir)
    notes = list(notes)
    is_synthetic = any(r.get("dataset") == "synthetic" for r in rows)
    if is_synthetic:
        notes[:0] = [SYNTHETIC_WARNING]
    notes += fusion_gains(rows)
    record = record or {}
    env = {"device": record.get("hardware", ""),
           "torch": record.get("versions", {}).get("torch", ""), "date": record.get("date", "")}
    rows = [{**env, **r} for r in rows]
    paths = {"csv": report.write_csv(out_dir / f"{name}.csv", rows, CSV_COLUMNS)}
    labels = [f"{r['row']} ({r['column']})" for r in rows]
    sections: list[str] = []
    if is_synthetic:
        paths["png"] = synthetic.write_ceiling_figure(out_dir / f"{name}.png", rows, name)
        sections = synthetic.report_sections(rows)
    else:
        paths["png"] = report.write_bar_chart(
            out_dir / f"{name}.png", labels, [float(r["value"]) for r in rows],
            [r.get("paper_value") for r in rows],
            f"{name}: reproduced vs paper (mean class acc.)",
            intervals=[(r.get("ci_low"), r.get("ci_high")) for r in rows])
    paths["md"] = report.write_markdown(
        out_dir / f"{name}.md", f"{name}: reproduced vs paper", _display(rows), MD_COLUMNS,
        notes=notes + [INTERVAL_NOTE, "paper_value / delta: mean class accuracy in % (delta in "
                       "percentage points); top1: overall video accuracy in %. protocol: test "
                       "frames x crops and crop aggregation; schedule: solver preset (release "
                       "= the Caffe release's solver, paper = the paper's text, custom = a reduced "
                       "profile) and its length; partial_bn: release (BN statistics and affine "
                       "frozen after the first BN), paper (statistics only) or none; init: what "
                       "was loaded; precision: fp32 = IEEE float32 as the release, tf32 / bf16 = "
                       "faster deviations (tsn/engine/precision.py); clip_mode: release = the "
                       "gradient clip compares the norm of the gradient averaged over GPUs and "
                       "iter_size, as the release's 4 GPUs x iter_size 1, caffe_iter_size = "
                       "Caffe's literal rule (the iter_size sum; a tighter clip when iter_size "
                       "> 1). Every run and score file is also in the runs table "
                       "(results/runs.csv, `tsn results`)."],
        record=record, image=paths["png"].name, sections=sections)
    return paths


def read_measured(path: str | Path) -> list[dict]:
    """Read a results/<table>.csv back as dicts (value as float)."""
    with Path(path).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        r["value"] = float(r["value"])
        for key in ("ci_low", "ci_high"):  # reports written before intervals have none
            r[key] = float(r[key]) if r.get(key) not in (None, "") else None
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m reproduce.compare results/table2.csv [--check]`: print the diff table."""
    parser = argparse.ArgumentParser(prog="python -m reproduce.compare", description=__doc__)
    parser.add_argument("results_csv", nargs="+")
    parser.add_argument("--paper", default=str(PAPER_CSV))
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the paper's number lies outside a comparable row's "
                        "95%% interval")
    args = parser.parse_args(argv)
    rows = compare([r for p in args.results_csv for r in read_measured(p)],
                   load_paper(args.paper))
    print(report.markdown_table(rows, ("table", "row", "column", "value (95% CI)",
                                       "paper_value", "delta", "paper_in_interval")))
    failed = [r for r in rows if r["paper_in_interval"] == "outside"]
    if args.check and failed:
        print(f"{len(failed)} row(s) with the paper's number outside the interval",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
