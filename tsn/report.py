"""Report writers: run records, CSV / markdown tables and bar-chart / confusion PNGs.

Every number in a report sits next to the choices that produced it (every report names the
choices, released code vs paper: docs/reproduce.md), so rows carry their protocol columns and
every report starts with a run record (commit, versions, hardware, seed). All writes are atomic.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import logging
import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tsn.atomic import atomic_write_bytes

log = logging.getLogger(__name__)


def git_commit(repo: str | Path | None = None) -> str:
    """Short git commit of `repo` (default: this package's checkout), '+dirty' if modified;
    where there is no git checkout (a copied tree, e.g. on a lent GPU machine), $TSN_COMMIT if
    set (the commit the copy was made from), else 'unknown'."""
    cwd = Path(repo) if repo else Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=cwd, text=True,
                             capture_output=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, text=True, capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("TSN_COMMIT") or "unknown"
    return sha + ("+dirty" if dirty else "")


def hardware() -> str:
    """One-line description of the device: the CUDA device name, else CPU cores."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    return f"CPU {platform.processor() or platform.machine()} x{os.cpu_count()} cores"


def run_record(config: dict | None = None, seed: int | None = None) -> dict:
    """What produced a result: config, git commit, library versions, hardware, seed, date."""
    import torch

    return {
        "config": config or {},
        "commit": git_commit(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "numpy": np.__version__},
        "hardware": hardware(),
        "seed": seed,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def write_csv(path: str | Path, rows: Sequence[dict], columns: Sequence[str]) -> Path:
    """Rows (dicts) -> CSV with exactly `columns` (missing keys blank, other keys dropped)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _fmt(row.get(c)) for c in columns})
    return atomic_write_bytes(path, buf.getvalue().encode())


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """A GitHub markdown table of `rows` restricted to `columns`."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [_fmt(row.get(c)).replace("|", "/") for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_markdown(path: str | Path, title: str, rows: Sequence[dict], columns: Sequence[str],
                   notes: Sequence[str] = (), record: dict | None = None,
                   image: str | None = None, sections: Sequence[str] = ()) -> Path:
    """Markdown report: title, notes (warnings first), table, optional image, further sections
    (markdown text, each with its own heading) and the run record."""
    parts = [f"# {title}", ""]
    for i, note in enumerate(notes):  # one blockquote paragraph per note
        parts += ([">"] if i else []) + [f"> {note}"]
    parts += [""] if notes else []
    parts += [markdown_table(rows, columns), ""]
    if image:
        parts += [f"![{title}]({image})", ""]
    for section in sections:
        parts += [section.rstrip(), ""]
    if record:
        parts += ["## Run record", ""]
        parts += [f"- {k}: {v}" for k, v in record.items() if k != "config"]
        parts.append("")
    return atomic_write_bytes(path, "\n".join(parts).encode())


def write_bar_chart(path: str | Path, labels: Sequence[str], reproduced: Sequence[float],
                    paper: Sequence[float | None], title: str,
                    intervals: Sequence[tuple] | None = None) -> Path:
    """Grouped bars, reproduced vs paper (in %), one group per row label; `intervals`:
    (low, high) of each reproduced value (%), drawn as error bars (None or blank: none)."""
    import matplotlib

    matplotlib.use("Agg")  # headless: no display on CI or GPU boxes
    import matplotlib.pyplot as plt

    x = np.arange(len(labels))
    paper_vals = [np.nan if p is None else p for p in paper]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(labels)), 4.5))
    ax.bar(x - 0.2, reproduced, 0.4, label="reproduced (95% interval)" if intervals else
           "reproduced")
    if intervals:
        values = np.asarray(reproduced, dtype=np.float64)
        lo = np.array([np.nan if i[0] in (None, "") else float(i[0]) for i in intervals])
        hi = np.array([np.nan if i[1] in (None, "") else float(i[1]) for i in intervals])
        ax.errorbar(x - 0.2, values, yerr=[np.nan_to_num(values - lo), np.nan_to_num(hi - values)],
                    fmt="none", ecolor="black", capsize=3, lw=1)
    ax.bar(x + 0.2, paper_vals, 0.4, label="paper")
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("mean class accuracy (%)")
    ax.set_ylim(0, 115)  # headroom for the legend above the 100 % bars
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(title, fontsize=10)
    ax.legend(loc="upper left", ncol=2)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def write_interval_chart(path: str | Path, labels: Sequence[str], values: Sequence[float],
                         lows: Sequence[float], highs: Sequence[float], title: str) -> Path:
    """Horizontal bars of accuracies (%) with their 95% intervals as error bars, one per label
    (`tsn results plot`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values, lows, highs = (np.asarray(v, dtype=np.float64) for v in (values, lows, highs))
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9.0, 1.2 + 0.32 * len(labels)))
    ax.barh(y, values, color="tab:blue", alpha=0.8)
    ax.errorbar(values, y, xerr=[values - lows, highs - values], fmt="none", ecolor="black",
                capsize=3, lw=1)
    for yi, v in zip(y, values):
        ax.text(v + 1, yi, f"{v:.1f}", va="center", fontsize=7)
    ax.set_yticks(y, labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 105)
    ax.set_xlabel("mean class accuracy (%), bars: 95% interval")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def write_confusion_png(path: str | Path, cm: np.ndarray, title: str,
                        class_names: Sequence[str] | None = None, top: int = 15) -> Path:
    """Confusion-matrix figure that stays readable at 101 classes.

    Rows are the true class, columns the prediction, both sorted by per-class accuracy (worst
    first, classes without test videos last); a cell's colour is the share of the true class's
    videos (colour bar), each row is labelled with its name, accuracy and `correct/videos`, the
    cells show their counts when there are at most 30 classes, and the `top` largest
    confusions (true -> predicted, videos, share) are listed beside the matrix.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import PowerNorm

    from tsn.metrics import per_class_accuracy, top_confusions

    cm = np.asarray(cm, dtype=np.int64)
    n = cm.shape[0]
    names = [str(x) for x in class_names] if class_names is not None else [str(i)
                                                                            for i in range(n)]
    acc = per_class_accuracy(cm)
    order = np.lexsort((np.arange(n), np.where(np.isnan(acc), 2.0, acc)))  # worst first
    rows = cm.sum(axis=1)
    sub = cm[order][:, order]
    norm = sub / np.maximum(sub.sum(axis=1, keepdims=True), 1)
    small = n <= 30
    side = min(18.0, 3.0 + (0.45 if small else 0.15) * n)
    fig = plt.figure(figsize=(side + 5.0, side + 1.0))
    grid = fig.add_gridspec(1, 2, width_ratios=(side, 4.2), wspace=0.25)
    ax, table = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    # square-root colour scale: a single confused video of ~40 still shows
    image = ax.imshow(norm, cmap="Blues", norm=PowerNorm(0.5, vmin=0, vmax=1),
                      interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, shrink=0.8)
    bar.set_label("share of the true class's test videos (square-root scale)")
    size = 8 if small else max(3.5, min(7.0, 520 / n))
    labels = [f"{names[i]}  {100 * acc[i]:.0f}% ({cm[i, i]}/{rows[i]})" if rows[i] else
              f"{names[i]}  (no videos)" for i in order]
    ax.set_yticks(range(n), labels, fontsize=size)
    ax.set_xticks(range(n), [names[i] for i in order], rotation=90, fontsize=size)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (accuracy, correct/videos)")
    if small:  # counts in the cells
        for r, c in zip(*np.nonzero(sub)):
            ax.text(c, r, str(sub[r, c]), ha="center", va="center", fontsize=7,
                    color="white" if norm[r, c] > 0.5 else "black")
    ax.set_title(f"{title}\n{n} classes sorted by accuracy, worst first", fontsize=10)
    table.axis("off")
    lines = [f"{names[t]} -> {names[p]}: {v} ({100 * v / rows[t]:.0f}%)"
             for t, p, v in top_confusions(cm, top)]
    table.text(0.0, 1.0, "top confusions\n(true -> predicted: videos)\n\n"
               + ("\n".join(lines) if lines else "none"), va="top", ha="left",
               family="monospace", fontsize=8, transform=table.transAxes)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100 if small else 120, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
