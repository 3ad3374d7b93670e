"""`tsn results`: list, filter and plot the runs table (results/runs.csv, tsn/runs_table.py),
rebuild it from the run folders, compare two score files (McNemar), draw a score file's
confusion.

  tsn results [--table results/runs.csv] [ACTION]
  tsn results list [--where dataset=ucf101 --where modality=flow] [--columns ...] [--sort ...]
  tsn results plot [--where ...] [--out results/runs.png]
  tsn results rebuild [--runs results/runs]
  tsn results compare A.npz B.npz        paired McNemar test of two runs on the same videos
  tsn results confusion SCORES.npz       confusion figure and per-class CSV of a score file

Exit codes: 0 done, 2 bad input (no table, unknown column, unreadable score file).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_TABLE = "results/runs.csv"
DEFAULT_COLUMNS = ("key", "modality", "arch", "recipe", "schedule", "protocol", "mean_class_acc",
                   "ci_low", "ci_high", "top1", "commit")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tsn results` (its actions are sub-commands; `list` when none is named)."""
    parser.add_argument("--table", default=DEFAULT_TABLE,
                        help=f"the runs table (default {DEFAULT_TABLE})")
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    listing = sub.add_parser("list", help="print the table (the default action)")
    plot = sub.add_parser("plot", help="bar chart of mean class accuracy with 95%% intervals")
    for p in (listing, plot):
        p.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                       help="keep rows whose COLUMN equals VALUE (COLUMN~TEXT: contains TEXT); "
                       "repeatable")
    listing.add_argument("--columns", default=",".join(DEFAULT_COLUMNS),
                         help="comma-separated columns to print ('all' for every one)")
    listing.add_argument("--sort", default="key", help="column to sort by (default key)")
    plot.add_argument("--out", default="results/runs.png", help="PNG to write")
    plot.add_argument("--label", default="key",
                      help="comma-separated columns that label each bar (default key)")
    rebuild = sub.add_parser("rebuild", help="write the table afresh from every score file")
    rebuild.add_argument("--runs", default=None,
                         help="folder of run folders (default: runs/ beside the table)")
    compare = sub.add_parser("compare", help="McNemar test of two score files of the same "
                             "videos, with both accuracies and intervals")
    compare.add_argument("a")
    compare.add_argument("b")
    confusion = sub.add_parser("confusion", help="confusion figure (classes sorted by "
                               "accuracy, top confusions) and per-class CSV of a score file")
    confusion.add_argument("scores")
    confusion.add_argument("--out", default=None, help="PNG (default <stem>.confusion.png)")


def _filter(df, where: list[str]):
    for cond in where:
        op = "~" if "~" in cond and ("=" not in cond or cond.index("~") < cond.index("=")) \
            else "="
        column, _, value = cond.partition(op)
        if column not in df.columns:
            raise ValueError(f"--where {cond!r}: no column {column!r}; columns: "
                             f"{', '.join(df.columns)}")
        df = df[df[column].str.contains(value, regex=False)] if op == "~" else \
            df[df[column] == value]
    return df


def _table(args):
    from tsn import runs_table

    table = Path(args.table)
    if not table.is_file():
        raise ValueError(f"{table}: no runs table; it is written with every score file under a "
                         "runs/ folder, or by `tsn results rebuild`")
    return runs_table.read_table(table)


def _list(args) -> int:
    from tsn import runs_table

    where = getattr(args, "where", [])  # `tsn results` alone: list everything
    wanted = getattr(args, "columns", ",".join(DEFAULT_COLUMNS))
    sort = getattr(args, "sort", "key")
    df = _filter(_table(args), where)
    columns = list(runs_table.COLUMNS) if wanted == "all" else \
        [c.strip() for c in wanted.split(",") if c.strip()]
    unknown = [c for c in [*columns, sort] if c not in df.columns]
    if unknown:
        raise ValueError(f"unknown column(s) {unknown}; columns: {', '.join(df.columns)}")
    numeric = runs_table.numeric(df)
    order = numeric.sort_values(sort, kind="stable").index
    shown = df.loc[order, columns]
    print(shown.to_string(index=False) if len(shown) else "no run matches")
    print(f"\n{len(shown)} of {len(_table(args))} rows; ci_low-ci_high: 95% interval of the "
          "test set's finite size (not training randomness)")
    return 0


def _plot(args) -> int:
    from tsn import runs_table
    from tsn.report import write_interval_chart

    df = runs_table.numeric(_filter(_table(args), args.where))
    if df.empty:
        raise ValueError("no run matches the filter: nothing to plot")
    labels = [" ".join(str(r[c]) for c in args.label.split(",")) for _, r in df.iterrows()]
    synthetic = (df["dataset"] == "synthetic").any()
    title = ("mean class accuracy, 95% interval of the test set"
             + (" (synthetic data: not comparable to the paper)" if synthetic else ""))
    out = write_interval_chart(args.out, labels, df["mean_class_acc"].tolist(),
                               df["ci_low"].tolist(), df["ci_high"].tolist(), title)
    print(f"wrote {out} ({len(df)} runs)")
    return 0


def _rebuild(args) -> int:
    from tsn import runs_table
    from tsn.scores import load_scores

    table = Path(args.table)
    runs = Path(args.runs) if args.runs else table.parent / runs_table.RUNS_FOLDER
    if not runs.is_dir():
        raise ValueError(f"{runs}: no run folders to index")
    out, skipped = runs_table.rebuild(runs, table, load_scores)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    print(f"wrote {out}: {len(runs_table.read_table(out))} score files under {runs}")
    return 0


def _compare(args) -> int:
    from tsn.fusion import check_aligned
    from tsn.metrics import mean_class_accuracy
    from tsn.scores import load_scores
    from tsn.stats import mcnemar_scores, scores_interval

    a, b = load_scores(args.a), load_scores(args.b)
    check_aligned([a, b], [args.a, args.b])
    for name, vs in ((args.a, a), (args.b, b)):
        ci = scores_interval(vs.scores, vs.labels)
        print(f"{name}: mean class accuracy {100 * mean_class_accuracy(vs.scores, vs.labels):.2f}"
              f" (95% CI {100 * ci.low:.2f}-{100 * ci.high:.2f})")
    print(mcnemar_scores(a.scores, b.scores, a.labels).describe("A", "B")
          + " (A, B as listed; a small p says the two runs differ beyond test-set chance)")
    return 0


def _confusion(args) -> int:
    from tsn.metrics import confusion_matrix
    from tsn.per_class import class_names_of, write_per_class_csv
    from tsn.report import write_confusion_png
    from tsn.scores import load_scores

    vs = load_scores(args.scores)
    out = Path(args.out) if args.out else Path(args.scores).with_suffix(".confusion.png")
    cm = confusion_matrix(vs.labels, vs.scores.argmax(1), vs.num_classes)
    write_confusion_png(out, cm, f"{vs.protocol.modality} {vs.protocol.label}",
                        class_names_of(vs))
    csv_path = write_per_class_csv(args.scores, vs)
    print(f"wrote {out} and {csv_path}")
    return 0


ACTIONS = {None: _list, "list": _list, "plot": _plot, "rebuild": _rebuild, "compare": _compare,
           "confusion": _confusion}


def run(args: argparse.Namespace) -> int:
    """Run the chosen action; one line on stderr and exit 2 on bad input."""
    try:
        return ACTIONS[args.action](args)
    except (ValueError, OSError) as err:  # ScoreFileError is a ValueError
        print(f"tsn results: error: {err}", file=sys.stderr)
        return 2
