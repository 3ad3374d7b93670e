"""Per-class results of a score file: every class's accuracy with its interval, the class it is
most often mistaken for, the worst classes, and the classes' names.

`tsn.scores.save_scores` writes `per_class_rows` beside every final score file as
`<stem>.per_class.csv` (PER_CLASS_COLUMNS); `tsn test` prints the five worst classes; the
confusion figure (tsn.report.write_confusion_png) sorts classes by these accuracies and lists the
top confusions beside the matrix. Accuracies here are in percent, intervals are Wilson's
(tsn/stats.py), one per class on that class's test videos.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tsn.metrics import confusion_matrix
from tsn.report import write_csv
from tsn.stats import proportion_interval

if TYPE_CHECKING:  # the score type only; tsn.scores imports this module
    from tsn.scores import VideoScores

PER_CLASS_COLUMNS = ("class", "name", "videos", "correct", "accuracy", "ci_low", "ci_high",
                     "most_confused_with", "confused_videos")


def per_class_path(score_path: str | Path) -> Path:
    """`<dir>/<stem>.per_class.csv` beside the score file `<dir>/<stem>.npz`."""
    score_path = Path(score_path)
    return score_path.with_name(score_path.stem + ".per_class.csv")


def _protocol_classes(extra: dict) -> list | None:
    """Class names a score file's protocol carries (`tsn test` records the run's), or the first
    fused file's."""
    if extra.get("classes"):
        return list(extra["classes"])
    for part in extra.get("fused") or ():
        found = _protocol_classes(part.get("protocol", {}).get("extra", {}))
        if found:
            return found
    return None


def class_names_of(vs: VideoScores) -> tuple[str, ...]:
    """Names of the score file's classes in label order: those its protocol records (the run's
    classes, tsn.build.class_names), else the dataset's official list when its length fits
    (tsn.data.splits.official_classes), else `class <label>`."""
    from tsn.data.splits import official_classes  # the synth list imports OpenCV: on use only

    n = vs.num_classes
    names = _protocol_classes(vs.protocol.extra)
    if not names or len(names) != n:
        try:
            names = list(official_classes(vs.protocol.dataset))
        except ValueError:  # DataError: no official list for this dataset name
            names = None
    if not names or len(names) != n:
        names = [f"class {i}" for i in range(n)]
    return tuple(str(x) for x in names)


def per_class_rows(vs: VideoScores, names: Sequence[str] | None = None) -> list[dict]:
    """One dict per class (PER_CLASS_COLUMNS), in label order; classes without a test video
    have no accuracy (blank) and are left out of mean class accuracy (tsn/metrics.py)."""
    names = list(names or class_names_of(vs))
    cm = confusion_matrix(vs.labels, np.asarray(vs.scores).argmax(1), vs.num_classes)
    rows = []
    for c in range(vs.num_classes):
        n, k = int(cm[c].sum()), int(cm[c, c])
        row = {"class": c, "name": names[c], "videos": n, "correct": k}
        if n:
            ci = proportion_interval(k, n)
            row.update(accuracy=100.0 * k / n, ci_low=100 * ci.low, ci_high=100 * ci.high)
        wrong = cm[c].copy()
        wrong[c] = 0
        if wrong.any():
            j = int(wrong.argmax())
            row.update(most_confused_with=names[j], confused_videos=int(wrong[j]))
        else:
            row["confused_videos"] = 0
        rows.append(row)
    return rows


def write_per_class_csv(score_path: str | Path, vs: VideoScores) -> Path:
    """Write `per_class_rows(vs)` to `<stem>.per_class.csv` beside `score_path` (atomically)."""
    return write_csv(per_class_path(score_path), per_class_rows(vs), PER_CLASS_COLUMNS)


def worst_classes(rows: Sequence[dict], k: int = 5) -> list[dict]:
    """The `k` classes with the lowest accuracy (ties: more test videos first, then label)."""
    scored = [r for r in rows if r.get("accuracy") is not None]
    return sorted(scored, key=lambda r: (r["accuracy"], -r["videos"], r["class"]))[:k]


def describe_worst(rows: Sequence[dict], k: int = 5) -> list[str]:
    """One line per worst class: `name  acc% (correct/videos), mostly taken for X (m videos)`."""
    lines = []
    for r in worst_classes(rows, k):
        line = f"{r['name']}  {r['accuracy']:.1f}% ({r['correct']}/{r['videos']})"
        if r.get("most_confused_with"):
            line += f", mostly taken for {r['most_confused_with']} ({r['confused_videos']})"
        lines.append(line)
    return lines

