"""The runs table: one row per score file under a `runs/` folder, in `runs.csv` beside that folder
(results/runs/<data>/<profile>/<run>/scores_25x10.npz -> results/runs.csv).

A row says what produced a number and the number (COLUMNS): dataset, split, modality, backbone,
recipe (the solver preset: release / paper / custom), schedule, batch, initialisation, partial
BN, clip mode, precision, the flow that made the frames (the frames root's
extract_settings.json, tsn/flow/settings.py), the test protocol, mean class accuracy with its 95%
interval (tsn/stats.py), overall top-1, the config hash, commit and date. `tsn results` lists,
filters and plots it; the paper-table reports (reproduce/) read their numbers from it.

A row is a function of files alone (the score file, its run folder's config.json and run.json,
the test list's frames root), never of the moment it was indexed, so `tsn results rebuild`
(every score file found again) writes the same table as the incremental writes that
tsn.scores.save_scores makes for each score file. Rows are sorted by `key` (the score file's path
relative to the table's folder); every write rewrites the file atomically (tsn/atomic.py) under
a lock file, so two processes indexing at once lose no row.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tsn.atomic import atomic_write_text
from tsn.metrics import mean_class_accuracy, video_top1
from tsn.stats import scores_interval

if TYPE_CHECKING:  # the score type only; tsn.scores imports this module
    from tsn.scores import VideoScores

TABLE_NAME = "runs.csv"
RUNS_FOLDER = "runs"
COLUMNS = (
    "key",  # score file, relative to the table's folder
    "kind",  # stream | fused
    "dataset", "split", "modality",
    "arch", "segments", "consensus", "init", "partial_bn",
    "recipe",  # solver preset: release (the Caffe release's solvers) | paper | custom
    "schedule",  # max_iter, base_lr and lr policy
    "batch",  # effective videos per update
    "clip_mode", "precision",
    "flow",  # how the frames root's flow was made (method, backend, semantics)
    "protocol",  # test frames x crops, crop aggregation (and fusion weights)
    "videos", "classes",
    "mean_class_acc", "ci_low", "ci_high",  # %, 95% interval of the test set's finite size
    "top1",  # overall video accuracy, %
    "config_hash",  # stream: the run's resolved config.json; fused: what was fused, how
    "run",  # run folder, relative to the table's folder
    "weights",  # checkpoint tested, or the fused files with their weights
    "commit", "date",
)
RECIPES = {"released": "release", "paper": "paper", "custom": "custom"}
# the frames root's record of its extraction: tsn.flow.settings.SETTINGS_FILE, read here as plain
# JSON so that listing runs never loads the flow package (tests check the two names agree)
SETTINGS_FILE = "extract_settings.json"


def table_for(score_path: str | Path) -> Path | None:
    """`runs.csv` beside the nearest enclosing folder named `runs`, or None outside one."""
    path = Path(os.path.abspath(score_path))
    for parent in path.parents:
        if parent.name == RUNS_FOLDER:
            return parent.parent / TABLE_NAME
    return None


def _hash(data) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def frames_settings(list_file: str | os.PathLike) -> dict:
    """The `settings` of the extract_settings.json of the frames root a file list reads (its
    first video's folder's parent; tsn/flow/settings.py), {} when unknown."""
    try:
        with open(list_file, encoding="utf-8") as fh:
            first = fh.readline().split()
    except OSError:
        return {}
    if not first:
        return {}
    return _read_json(Path(first[0]).parent / SETTINGS_FILE).get("settings") or {}


def flow_of_list(list_file: str | os.PathLike) -> str:
    """The flow method of the frames a test list reads: `<method> <backend> <semantics>` from
    the frames root's extract_settings.json (tsn/flow/settings.py), "" when unknown."""
    s = frames_settings(list_file)
    parts = [s.get("flow"), s.get("backend"), s.get("semantics")]
    return " ".join(str(p) for p in parts if p)


def _is_flow(modality: str) -> bool:
    from tsn.modality import MODALITIES

    return modality in MODALITIES and MODALITIES[modality].is_flow


def _fmt(x: float) -> str:
    return f"{x:.2f}"


def _part_run_dir(file: str, fused_path: Path) -> Path:
    """The run folder of one fused stream's score file. The file is recorded as it was given
    to fusion (often relative to the working directory then), so it is looked up under each
    folder above the fused file, which is the same wherever the table is rebuilt from; the
    fused file's own folder if it is not found."""
    part = Path(file)
    if part.is_absolute():
        return part.parent
    for folder in fused_path.parents:
        if file and (folder / part).is_file():
            return (folder / part).parent
    return fused_path.parent


def _run_columns(run_dir: Path, base: Path) -> dict:
    """The columns read from a training run's folder (config.json, run.json): empty when
    `run_dir` holds no run (a score file tested from loose weights)."""
    config = _read_json(run_dir / "config.json")
    if not config:
        return {}
    record = _read_json(run_dir / "run.json")
    s, m = config.get("solver", {}), config.get("model", {})
    return {
        "run": os.path.relpath(run_dir, base), "arch": m.get("arch", ""),
        "segments": str(m.get("num_segments", "")), "consensus": m.get("consensus", ""),
        "init": str(record.get("init", m.get("init", "")))  # what actually happened
                + (" (cross-modality)" if record.get("cross_modality") else ""),
        "partial_bn": m.get("partial_bn", ""),
        "recipe": RECIPES.get(s.get("preset", ""), s.get("preset", "")),
        "schedule": (f"max_iter {s.get('max_iter')}, base_lr {s.get('base_lr')} "
                     f"{s.get('lr_policy')}") if s else "",
        "batch": str(s.get("effective_batch", "")),
        "clip_mode": s.get("clip_mode", "caffe_iter_size"),  # before the setting: literal
        "precision": config.get("precision", "fp32"),
    }


def row_for(score_path: str | Path, vs: VideoScores, table: str | Path) -> dict:
    """The runs-table row of score file `score_path` holding `vs`, keyed relative to `table`'s
    folder (all values strings, as the CSV holds them)."""
    score_path = Path(os.path.abspath(score_path))
    base = Path(os.path.abspath(table)).parent
    p = vs.protocol
    fused = p.extra.get("fused") or []
    parts = [f.get("protocol", {}) for f in fused] or [dataclasses.asdict(p)]
    interval = scores_interval(vs.scores, vs.labels)
    row = {
        "key": os.path.relpath(score_path, base), "kind": "fused" if fused else "stream",
        "dataset": p.dataset, "split": str(p.split), "modality": p.modality,
        "protocol": p.label + (" fused " + ":".join(f"{f['weight']:g}" for f in fused)
                               if fused else ""),
        "videos": str(len(vs.video_ids)), "classes": str(vs.num_classes),
        "mean_class_acc": _fmt(100 * mean_class_accuracy(vs.scores, vs.labels)),
        "ci_low": _fmt(100 * interval.low), "ci_high": _fmt(100 * interval.high),
        "top1": _fmt(100 * video_top1(vs.scores, vs.labels)),
        "weights": p.weights, "commit": p.commit,
        "date": max((str(q.get("extra", {}).get("record", {}).get("date", "")) for q in parts),
                    default=""),
    }
    flows = [flow_of_list(q["extra"]["list"]) for q in parts
             if _is_flow(q.get("modality", "")) and q.get("extra", {}).get("list")]
    row["flow"] = "; ".join(dict.fromkeys(f for f in flows if f))
    run_dir = score_path.parent
    config = _read_json(run_dir / "config.json")
    # A fused file lives in one stream's run folder; each column describes every fused stream
    # (one value where they agree, else "rgb: ...; flow: ..."), not the folder's stream alone.
    described = ([(str(f.get("protocol", {}).get("modality", "")),
                   _part_run_dir(f.get("file", ""), score_path)) for f in fused]
                 if fused else [(p.modality, run_dir)])
    per_run = [(m, _run_columns(d, base)) for m, d in described]
    per_run = [(m, c) for m, c in per_run if c]
    for column in (per_run[0][1] if per_run else {}):
        values = dict.fromkeys(c.get(column, "") for _, c in per_run)
        row[column] = (next(iter(values)) if len(values) == 1
                       else "; ".join(f"{m}: {c.get(column, '')}" for m, c in per_run))
    if fused:  # what was fused, and how: the streams' protocols (without dates) and weights
        row["config_hash"] = _hash([[f.get("weight"), {k: v for k, v in f.get("protocol", {})
                                                       .items() if k != "extra"}]
                                    for f in fused])
    elif config:
        row["config_hash"] = _hash(config)
    return {c: str(row.get(c, "")) for c in COLUMNS}


def _frame(rows: Iterable[dict]):
    import pandas as pd

    df = pd.DataFrame(list(rows), columns=list(COLUMNS), dtype=str)
    return df.drop_duplicates("key", keep="last").sort_values("key", kind="stable")


def read_table(table: str | Path):
    """The runs table as a pandas DataFrame of strings (empty, with COLUMNS, if absent)."""
    import pandas as pd

    table = Path(table)
    if not table.is_file():
        return pd.DataFrame(columns=list(COLUMNS), dtype=str)
    df = pd.read_csv(table, dtype=str, keep_default_na=False)
    for column in COLUMNS:  # a table written before a column existed
        if column not in df:
            df[column] = ""
    return df[list(COLUMNS)]


def numeric(df):
    """A copy of a runs table with its number columns as floats (blank -> NaN)."""
    import pandas as pd

    out = df.copy()
    for column in ("split", "segments", "batch", "videos", "classes", "mean_class_acc",
                   "ci_low", "ci_high", "top1"):
        out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


def write_table(table: str | Path, rows: Iterable[dict]) -> Path:
    """Write rows (one per key, sorted by key) atomically as the runs table."""
    buf = io.StringIO()
    _frame(rows).to_csv(buf, index=False, lineterminator="\n")
    return atomic_write_text(table, buf.getvalue())


@contextmanager
def _locked(table: Path):
    table.parent.mkdir(parents=True, exist_ok=True)
    # a hidden lock file beside the table (never replaced, unlike the table; git-ignored)
    with open(table.with_name(f".{table.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def index_score_file(score_path: str | Path, vs: VideoScores,
                     table: str | Path | None = None) -> Path | None:
    """Add (or replace) the row of `score_path` in its runs table (default: `table_for`);
    returns the table, or None for a score file outside any `runs/` folder."""
    table = Path(table) if table is not None else table_for(score_path)
    if table is None:
        return None
    row = row_for(score_path, vs, table)
    with _locked(table):
        df = read_table(table)
        rows = [r for r in df.to_dict("records") if r["key"] != row["key"]] + [row]
        return write_table(table, rows)


def score_files(runs_root: str | Path) -> list[Path]:
    """Every final score file under `runs_root` (partial files of unfinished tests left out)."""
    return sorted(p for p in Path(runs_root).rglob("*.npz") if ".partial" not in p.name)


def rebuild(runs_root: str | Path, table: str | Path,
            load: Callable[[Path], VideoScores]) -> tuple[Path, list[tuple[Path, str]]]:
    """Write the runs table `table` afresh from every score file under `runs_root`, each read
    with `load` (tsn.scores.load_scores). Returns the table and the (file, reason) of the score
    files that could not be read, which get no row."""
    rows, skipped = [], []
    for path in score_files(runs_root):
        try:
            rows.append(row_for(path, load(path), table))
        except ValueError as err:  # ScoreFileError: a broken or foreign .npz
            skipped.append((path, str(err)))
    with _locked(Path(table)):
        return write_table(table, rows), skipped


def lookup(table: str | Path, score_path: str | Path) -> dict | None:
    """The row of `score_path` in `table`, or None."""
    key = os.path.relpath(os.path.abspath(score_path), Path(os.path.abspath(table)).parent)
    df = read_table(table)
    hit = df[df["key"] == key]
    return None if hit.empty else hit.iloc[0].to_dict()


def mean_interval_fields(row: dict) -> tuple[float, float, float]:
    """(mean class accuracy, interval low, interval high) of a row, in %."""
    return tuple(float(row[c]) if row[c] != "" else np.nan
                 for c in ("mean_class_acc", "ci_low", "ci_high"))
