"""Per-video test scores and the protocol that produced them, saved as pickle-free `.npz`.

A `VideoScores` is what `tsn test` writes and what `tsn fuse` reads (docs/caffe_release.md#testing):
video ids, labels, per-video averaged *raw* logits (mean over crops, then over frames, no
softmax, as [TSN] pyActionRecog/utils/video_funcs.py `default_aggregation_func`), optionally the
full (frames, crops, C) arrays, and a `Protocol` record naming every choice behind the numbers.

Files hold only plain numeric / unicode arrays (`allow_pickle=False` on load), unlike
eval_net.py's object-array npz; `import_eval_net_npz` converts those legacy files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tsn.atomic import atomic_open
from tsn.per_class import write_per_class_csv
from tsn.runs_table import index_score_file

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


class ScoreFileError(ValueError):
    """A score file is missing, unreadable, or inconsistent."""


@dataclass(frozen=True)
class Protocol:
    """How a score file was produced (written into the file, shown in every report)."""

    modality: str = "rgb"  # rgb | flow | rgb_diff | warped_flow
    num_frames: int = 25  # snippets per video ([TSN] eval_net.py num_frame_per_video = 25)
    num_crops: int = 10  # 10 = oversample (4 corners + centre, x2 flips); 1 = centre crop
    crop_agg: str = "mean"  # aggregation over crops ([TSN] eval_scores.py --crop_agg mean|max)
    frame_sampling: str = "eval_net"  # eval_net (25 ticks, step formula) | segment_centre
    weights: str = ""  # checkpoint or weight name the scores come from
    dataset: str = ""  # ucf101 | hmdb51 | synthetic
    split: int = 0  # 1..3 (0 = not applicable)
    commit: str = ""  # git commit of the code that produced the scores
    note: str = ""  # free text (profile deviations, e.g. input size)
    extra: dict = field(default_factory=dict)  # anything else worth recording (JSON-able)

    @property
    def label(self) -> str:
        """Short protocol name for reports, e.g. `25x10 mean`."""
        return f"{self.num_frames}x{self.num_crops} {self.crop_agg}"


@dataclass(frozen=True)
class VideoScores:
    """Per-video averaged raw logits of one test run."""

    video_ids: tuple[str, ...]
    labels: np.ndarray  # (N,) int64
    scores: np.ndarray  # (N, C) float, averaged raw logits
    protocol: Protocol = Protocol()
    full: np.ndarray | None = None  # (N, frames, crops, C) raw logits, optional

    def __post_init__(self) -> None:
        n = len(self.video_ids)
        if np.asarray(self.labels).shape != (n,):
            raise ScoreFileError(f"{n} video ids but labels of shape {np.shape(self.labels)}")
        if np.asarray(self.scores).ndim != 2 or np.shape(self.scores)[0] != n:
            raise ScoreFileError(f"{n} video ids but scores of shape {np.shape(self.scores)}")
        if self.full is not None and (np.ndim(self.full) != 4 or np.shape(self.full)[0] != n):
            raise ScoreFileError(f"full scores must be (N, frames, crops, C) with N={n}, "
                                 f"got {np.shape(self.full)}")

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return int(np.shape(self.scores)[1])


def aggregate(full: np.ndarray, crop_agg: str = "mean") -> np.ndarray:
    """(…, frames, crops, C) raw logits -> (…, C): crops (mean|max), then mean over frames.

    Same order as [TSN] video_funcs.py `default_aggregation_func(normalization=False)`.
    """
    if crop_agg == "mean":
        per_frame = full.mean(axis=-2)
    elif crop_agg == "max":
        per_frame = full.max(axis=-2)
    else:
        raise ValueError(f"crop_agg must be 'mean' or 'max', got {crop_agg!r}")
    return per_frame.mean(axis=-2)


def save_scores(path: str | Path, vs: VideoScores, *, side_files: bool = True) -> Path:
    """Write `vs` to `path` (.npz) atomically; returns the path written.

    The one place score files are made, so it also writes what goes with every final score file
    (`side_files`; never for the partial files of an unfinished test, which carry `partial_of`
    in their protocol): the per-class accuracy CSV beside it (`<stem>.per_class.csv`,
    tsn/per_class.py) and, for a file under a folder named `runs`, its row of the runs table
    `runs.csv` beside that folder (results/runs/... -> results/runs.csv, tsn/runs_table.py).
    """
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "video_ids": np.array(vs.video_ids, dtype=np.str_),
        "labels": np.asarray(vs.labels, dtype=np.int64),
        "scores": np.asarray(vs.scores, dtype=np.float32),
        "protocol": np.array(json.dumps(dataclasses.asdict(vs.protocol), sort_keys=True)),
    }
    if vs.full is not None:
        arrays["full"] = np.asarray(vs.full, dtype=np.float32)
    # disk full / read-only: no partial file is left and the old one stays intact
    with atomic_open(path, "wb") as handle:
        np.savez(handle, **arrays)
    if side_files and "partial_of" not in vs.protocol.extra:
        try:
            write_per_class_csv(path, vs)
            index_score_file(path, vs)
        except ValueError as err:  # labels outside the classes: load_scores refuses the file
            log.warning("%s: no per-class CSV or runs-table row: %s", path, err)
    return path


def load_scores(path: str | Path) -> VideoScores:
    """Read a score file written by `save_scores`; one clear error if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ScoreFileError(f"{path}: score file not found (write one with `tsn test`)")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise ScoreFileError(
            f"{path}: not a pickle-free score file ({exc}); if it is an eval_net.py "
            "--save_scores file, convert it with tsn.scores.import_eval_net_npz") from exc
    except Exception as exc:  # zipfile / OS errors: one message, not a traceback
        raise ScoreFileError(f"{path}: cannot read as .npz ({exc})") from exc
    missing = {"video_ids", "labels", "scores", "protocol"} - set(data)
    if missing:
        raise ScoreFileError(f"{path}: missing arrays {sorted(missing)}; "
                             "not a score file written by `tsn test`")
    try:
        proto = json.loads(str(data["protocol"]))
        known = {f.name for f in dataclasses.fields(Protocol)}
        protocol = Protocol(**{k: v for k, v in proto.items() if k in known})
        vs = VideoScores(tuple(str(v) for v in data["video_ids"]),
                         data["labels"].astype(np.int64), data["scores"], protocol,
                         data.get("full"))
        # a NaN row or an out-of-range label would silently change every accuracy
        bad = np.flatnonzero(~np.isfinite(np.asarray(vs.scores, dtype=np.float64)).all(axis=1))
        if bad.size:
            raise ScoreFileError(f"video {vs.video_ids[bad[0]]!r} has non-finite scores "
                                 f"({bad.size} such videos)")
        out = np.flatnonzero((vs.labels < 0) | (vs.labels >= vs.num_classes))
        if out.size:
            raise ScoreFileError(f"video {vs.video_ids[out[0]]!r} has label "
                                 f"{vs.labels[out[0]]}, outside 0..{vs.num_classes - 1}")
        return vs
    except (ScoreFileError, ValueError, TypeError) as exc:
        raise ScoreFileError(f"{path}: inconsistent score file: {exc}") from exc


def import_eval_net_npz(path: str | Path, video_ids: list[str] | None = None,
                        modality: str = "rgb", crop_agg: str = "mean") -> VideoScores:
    """Convert a legacy eval_net.py `--save_scores` file (object arrays) to `VideoScores`.

    The legacy file needs pickle to load, so only use it on files you trust. It stores no
    video ids: pass them (test-list order), or they default to `video_00000`, ...
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=True) as z:
            rows, labels = z["scores"], np.asarray(z["labels"], dtype=np.int64)
    except Exception as exc:
        raise ScoreFileError(f"{path}: not an eval_net.py score file ({exc})") from exc
    full = np.stack([np.asarray(r[0], dtype=np.float32) for r in rows])  # (N, 25, 10, C)
    if full.ndim == 3:  # single crop saved as (frames, C)
        full = full[:, :, None, :]
    ids = tuple(video_ids) if video_ids else tuple(f"video_{i:05d}" for i in range(len(rows)))
    protocol = Protocol(modality=modality, num_frames=full.shape[1], num_crops=full.shape[2],
                        crop_agg=crop_agg, note=f"imported from eval_net.py file {path.name}")
    return VideoScores(ids, labels, aggregate(full, crop_agg), protocol, full)
