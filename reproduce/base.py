"""What a table row is, and how one is run: train what is missing, test, fuse, compare.

A row is a set of *cells* (one per paper column) under its paper table and the table's base
config; a cell is one stream (spatial / temporal / single) or a weighted fusion of streams; a
stream is a named delta (`key=value` overrides of tsn.config) from the base. Every table module
has the same shape: `ROWS = {name: Row}`. A stream's overrides resolve into a tsn.config
Experiment, trained with tsn.train.train and tested with tsn.evaluate.test_run in this process
(a subprocess only under a launcher such as mpirun). Runs are keyed by a hash of their resolved
overrides, so a run shared by several tables (e.g. Table 1's last row = Table 4's BN-Inception
row) is trained and tested once and then reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from reproduce import data as data_mod
from reproduce.profiles import Profile
from tsn import report, runs_table
from tsn.config import Experiment, build_experiment, parse_overrides
from tsn.engine.checkpoint import list_checkpoints
from tsn.evaluate import test_run
from tsn.fusion import default_weights, fuse
from tsn.metrics import mean_class_accuracy
from tsn.scores import load_scores, save_scores
from tsn.stats import class_counts, mean_of_intervals
from tsn.train import train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stream:
    """One network to train and test: a modality (tsn/modality.py) and its config delta."""

    modality: str  # rgb | flow | rgb_diff | warped_flow
    delta: tuple[str, ...] = ()  # key=value overrides from the table's base config


@dataclass(frozen=True)
class Cell:
    """One paper number: a single stream or a weighted sum of streams' raw scores."""

    column: str  # paper.csv column: spatial | temporal | two_stream | single | fused
    streams: tuple[Stream, ...]
    weights: tuple[float, ...] | None = None  # None: tsn.fusion defaults (1:1.5, 1:1:0.5)


@dataclass(frozen=True)
class Row:
    """One paper row (its name is the `row` of results/paper.csv) and how its runs are made."""

    name: str
    cells: tuple[Cell, ...]
    note: str = ""  # which reading of the paper this row's delta encodes
    splits: tuple[int, ...] = (1,)  # Table 6 averages splits 1-3
    table: int = 0  # the paper table whose numbers the row reproduces
    base: tuple[str, ...] = ()  # the table's base config (key=value), before the stream deltas


def rows(table: int, base: tuple[str, ...], *members: Row) -> dict[str, Row]:
    """`ROWS` of a table module: its rows, keyed by name, tagged with the table and base."""
    return {r.name: replace(r, table=table, base=base) for r in members}


@dataclass(frozen=True)
class Context:
    """Where and how rows run: dataset, profile and output folders."""

    data: str  # synthetic | ucf101 | hmdb51
    profile: Profile
    data_root: Path = Path("data")
    runs_root: Path = Path("results/runs")
    init_weights: dict = field(default_factory=dict)  # arch -> converted ImageNet weights (.pt)
    overrides: tuple[str, ...] = ()  # applied last, e.g. solver.preset=paper (--schedule)
    launcher: str = ""  # prefix for `tsn train`, e.g. "mpirun -np 4"; "" = in this process


def two_stream(name: str, rgb: tuple[str, ...] = (), flow: tuple[str, ...] = (),
               note: str = "") -> Row:
    """A spatial / temporal / two_stream row (fusion 1 : 1.5 as in the release README)."""
    s, t = Stream("rgb", rgb), Stream("flow", flow)
    return Row(name, (Cell("spatial", (s,)), Cell("temporal", (t,)),
                      Cell("two_stream", (s, t), (1.0, 1.5))), note)


def stream_overrides(stream: Stream, base: tuple[str, ...], ctx: Context,
                     split: int) -> list[str]:
    """Resolved key=value list of one stream: base, then row delta, then profile, then data."""
    lists = data_mod.lists(ctx.data, split, stream.modality, ctx.data_root)
    # DATA=synthetic trains on `tsn synth` frame folders: data.dataset=synth (UCF101's format
    # and solver presets), so config.json and run.json say what the data really was
    family = "synth" if ctx.data == "synthetic" else ctx.data
    # the clip rule is in every run's overrides, so its hash: runs trained before clip_mode
    # existed (Caffe's literal iter_size rule) are never reused as release runs
    ordered = ["solver.clip_mode=release", *base, f"model.modality={stream.modality}",
               *stream.delta, *ctx.profile.overrides(stream.modality),
               f"data.dataset={family}",
               f"data.train_list={lists.train.resolve()}", f"data.split={split}",
               f"model.num_classes={lists.num_classes}", f"name={stream.modality}",
               *ctx.overrides]
    resolved: dict[str, str] = {}
    for pair in ordered:  # later deltas win, as in tsn.config's override order
        key, _, value = pair.partition("=")
        resolved[key] = value
    arch = resolved.get("model.arch", "bn_inception")
    if arch != "tiny" and resolved.get("model.init", "imagenet") != "scratch":
        # without weights the engine would fall back to scratch: refuse instead of reporting
        # a from-scratch number under an ImageNet row
        if arch not in ctx.init_weights:
            raise data_mod.DataMissing(
                f"{stream.modality} stream needs ImageNet weights for backbone {arch!r}: "
                "convert them with `python -m prototxt_port convert` (see weights/README.md) "
                f"and pass --init-weights {arch}=PATH (make: INIT_WEIGHTS='{arch}=PATH')")
        resolved["model.init_weights"] = str(Path(ctx.init_weights[arch]).resolve())
    return [f"{k}={v}" for k, v in resolved.items()]


def _portable(item: str) -> str:
    """`key=/abs/path` -> `key=path` relative to the working directory when under it."""
    key, sep, value = item.partition("=")
    path = value if sep else key
    if os.path.isabs(path) and Path(path).is_relative_to(Path.cwd()):
        path = os.path.relpath(path)
    return f"{key}={path}" if sep else path


def run_key(overrides: list[str], frames: dict | None = None) -> str:
    """Short stable hash naming a run folder: the same overrides on the same frames give the
    same run, which is reused. Paths count relative to the working directory (a clone elsewhere
    names its runs alike); `frames` (the settings that extracted the training frames,
    runs_table.frames_settings) count, so frames re-extracted another way never reuse a run
    trained on the old ones. `log.*` settings (e.g. log.tensorboard) are left out: what a run
    logs never changes it."""
    kept = sorted(_portable(o) for o in overrides if not o.startswith("log."))
    if frames:
        kept.append("frames=" + json.dumps(frames, sort_keys=True))
    return hashlib.sha1("\n".join(kept).encode()).hexdigest()[:10]


def stream_experiment(stream: Stream, base: tuple[str, ...], ctx: Context,
                      split: int) -> tuple[Experiment, list[str]]:
    """The tsn.config Experiment of one stream, and the overrides it was resolved from."""
    overrides = stream_overrides(stream, base, ctx, split)
    exp = build_experiment(parse_overrides(overrides), source=f"{stream.modality} stream")
    return exp, overrides


def _finished(run_dir: Path) -> bool:
    cfg = run_dir / "config.json"
    if not cfg.is_file():
        return False
    max_iter = json.loads(cfg.read_text())["solver"]["max_iter"]
    done = list_checkpoints(run_dir / "checkpoints")
    return bool(done) and done[-1][0] >= max_iter


# Open MPI's mpirun turns Ctrl-C into SIGTERM to every rank and SIGKILLs them
# odls_base_sigkill_timeout seconds later (default 1): too short for a BN-Inception iteration
# plus the checkpoint an interrupted run writes (docs/engine.md). Other launchers ignore it.
LAUNCHER_ENV = {"OMPI_MCA_odls_base_sigkill_timeout": "60"}


def launcher_env(environ) -> dict:
    """The environment of a launched `tsn train`: `environ` with LAUNCHER_ENV's defaults
    (a value the user set wins)."""
    return {**LAUNCHER_ENV, **environ}


def _train(exp: Experiment, overrides: list[str], run_dir: Path, resume: bool,
           ctx: Context) -> None:
    """Train in this process, or under `ctx.launcher` (e.g. "mpirun -np 4", one process per
    GPU, train_tsn.sh) as `tsn train` with the same overrides."""
    if not ctx.launcher:  # one process; iter_size keeps the effective batch of the solver
        try:
            train(exp, resume=resume, run_dir=run_dir)
        except OSError as err:  # disk full, read-only run folder: the last checkpoint is intact
            raise RuntimeError(f"training failed: cannot write {run_dir}: {err}") from err
        return
    request = run_dir / "request.json"
    report.atomic_write_bytes(run_dir / "empty.json", b"{}")
    args = ["train", str(request.with_name("empty.json")), *overrides, "--run-dir",
            str(run_dir)] + (["--resume"] if resume else [])
    cmd = [*shlex.split(ctx.launcher), sys.executable, "-m", "tsn.cli", *args]
    if subprocess.run(cmd, check=False, env=launcher_env(os.environ)).returncode != 0:
        raise RuntimeError(f"training failed: {' '.join(cmd)} (see {run_dir}/train.log)")


def ensure_scores(stream: Stream, base: tuple[str, ...], ctx: Context, split: int) -> Path:
    """Train the stream if its run is missing or unfinished, test it if no score file yet."""
    exp, overrides = stream_experiment(stream, base, ctx, split)
    train_list = next(o.partition("=")[2] for o in overrides
                      if o.startswith("data.train_list="))
    run_dir = ctx.runs_root / ctx.data / ctx.profile.name / (
        f"{stream.modality}-s{split}-{run_key(overrides, runs_table.frames_settings(train_list))}")
    run_dir.mkdir(parents=True, exist_ok=True)
    request = run_dir / "request.json"  # the overrides, for humans and for reuse checks
    report.atomic_write_bytes(request, json.dumps({"overrides": overrides}, indent=1).encode())
    if _finished(run_dir):
        log.info("reusing trained run %s", run_dir)
    else:
        resume = (run_dir / "checkpoints").is_dir() and any((run_dir / "checkpoints").iterdir())
        _train(exp, overrides, run_dir, resume, ctx)
    prof = ctx.profile
    scores = run_dir / f"scores_{prof.test_frames}x{prof.test_crops}.npz"
    if scores.is_file():
        log.info("reusing score file %s", scores)
        return scores
    lists = data_mod.lists(ctx.data, split, stream.modality, ctx.data_root)
    trained = json.loads((run_dir / "config.json").read_text())
    vs, _, _ = test_run(run_dir, lists.test, scores, frames=prof.test_frames,
                        crops=prof.test_crops, dataset=ctx.data, split=split,
                        batch=prof.test_batch, workers=prof.test_workers,
                        precision=trained.get("precision", "fp32"))  # tested as it was trained
    log.info("%s: mean class accuracy %.2f%% (%d videos, %s)", run_dir.name,
             100 * mean_class_accuracy(vs.scores, vs.labels), len(vs.video_ids),
             vs.protocol.label)
    return scores


def _table_row(path: Path, ctx: Context) -> dict:
    """The runs-table row of a score file (tsn/runs_table.py), indexed now when the file
    predates the table (score files written before it existed are reused as they are)."""
    table = runs_table.table_for(path) or ctx.runs_root.parent / runs_table.TABLE_NAME
    row = runs_table.lookup(table, path)
    if row is None:
        runs_table.index_score_file(path, load_scores(path), table)
        row = runs_table.lookup(table, path)
    return row


def run_row(row: Row, ctx: Context) -> list[dict]:
    """Train/test/fuse what the row needs: measured result dicts (one per cell; splits
    averaged), under the row's paper table; see compare.compare.

    The numbers and the protocol of each cell come from the runs table (results/runs.csv):
    mean class accuracy with its 95% interval, top-1, schedule, batch, init, backbone, ...; a
    mean over splits (Table 6) combines the splits' intervals (tsn.stats.mean_of_intervals)."""
    table, base = row.table, row.base
    splits = row.splits if ctx.data != "synthetic" else (1,)  # the synthetic set has one split
    out = []
    for cell in row.cells:
        entries, counts, paths, score_files = [], [], [], []
        for split in splits:
            split_paths = [ensure_scores(s, base, ctx, split) for s in cell.streams]
            runs = [load_scores(p) for p in split_paths]
            weights = cell.weights or default_weights(len(runs))
            if len(runs) == 1:
                vs, scored = runs[0], split_paths[0]
            else:  # keep the fused scores beside the first stream's
                vs = fuse(runs, weights, [str(p) for p in split_paths])
                scored = save_scores(split_paths[0].parent / (
                    f"fused_{run_key([str(p) for p in split_paths])}.npz"), vs)
            entries.append(_table_row(scored, ctx))
            counts.append(class_counts(vs.labels, vs.scores.argmax(1), vs.num_classes))
            score_files.append(scored)
            paths += split_paths
        first = entries[0]
        if len(entries) == 1:
            value, low, high = runs_table.mean_interval_fields(first)
        else:
            value = sum(float(e["mean_class_acc"]) for e in entries) / len(entries)
            ci = mean_of_intervals(counts)
            low, high = 100 * ci.low, 100 * ci.high
        fused = f", fused {':'.join(f'{w:g}' for w in weights)}" if len(cell.streams) > 1 else ""
        listed = [*(score_files if len(cell.streams) > 1 else []), *paths]
        out.append({
            "table": table, "row": row.name, "column": cell.column, "dataset": ctx.data,
            "split": "mean_of_3" if len(splits) == 3 else ",".join(map(str, splits)),
            "metric": "mean_class_acc", "value": value, "ci_low": low, "ci_high": high,
            "top1": sum(float(e["top1"]) for e in entries) / len(entries),
            "protocol": vs.protocol.label + fused,
            # the training recipe: the stream's row, or the fused row's (which names each
            # stream's where they differ, e.g. the schedule)
            "schedule": f"{first['recipe']} ({first['schedule']})",
            **{k: first[k] for k in ("batch", "init", "arch", "partial_bn", "segments",
                                          "consensus", "precision", "clip_mode")},
            "flow": "; ".join(dict.fromkeys(e["flow"] for e in entries if e["flow"])),
            "streams": "+".join(s.modality for s in cell.streams),
            "profile": ctx.profile.name,
            "scores": " ".join(str(p) for p in listed),  # the number's own file first
            "commit": first["commit"] or report.git_commit(),  # the code that tested it
            "note": row.note,
        })
    return out
