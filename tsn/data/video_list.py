"""TSN file lists: one line `<frame_dir> <num_frames> <label>` per video
(docs/caffe_release.md#file-lists).

The same three-column format is Caffe's `VideoData` source ([TSN] tools/build_file_list.py)
and mmaction2's `*_rawframes.txt` (there `frame_dir` is `class/video`, two-level layout);
both are read by `read_file_list`. Labels are 0-based.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tsn.atomic import atomic_open
from tsn.data.errors import DataError
from tsn.modality import get_modality

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class VideoRecord:
    """One video of a file list: its frame folder, frame count and 0-based label."""

    path: str  # frame folder (holds img_00001.jpg / flow_x_00001.jpg ...)
    num_frames: int  # img_ count (RGB lists) or flow_x_ count (flow lists)
    label: int  # 0-based class index


def read_file_list(
    path: str | os.PathLike, root: str | os.PathLike | None = None,
    num_classes: int | None = None,
) -> list[VideoRecord]:
    """Read a TSN / mmaction2-rawframes list; `root` is prepended to relative folder paths.

    Every malformed line, negative count or label out of `[0, num_classes)` raises one
    DataError naming the file, the line and the fix.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise DataError(f"{path}: cannot read the file list ({err.strerror})") from None
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise DataError(
                f"{path}:{lineno}: expected '<frame_dir> <num_frames> <label>', got {line!r} "
                "(a split file such as trainlist01.txt is not a file list: run `tsn lists`)"
            )
        # frame_dir may contain spaces (HMDB51 names do not, but be safe): the last two
        # columns are the numbers
        folder, num, label = " ".join(parts[:-2]), parts[-2], parts[-1]
        try:
            num_frames, lab = int(num), int(label)
        except ValueError:
            raise DataError(
                f"{path}:{lineno}: num_frames and label must be integers, got {num!r} {label!r}"
            ) from None
        if num_frames <= 0:
            raise DataError(f"{path}:{lineno}: video {folder} has {num_frames} frames")
        if lab < 0 or (num_classes is not None and lab >= num_classes):
            bound = f"[0, {num_classes})" if num_classes is not None else ">= 0"
            raise DataError(
                f"{path}:{lineno}: video {folder} has label {lab}, outside {bound} "
                "(labels are 0-based: classInd index - 1)"
            )
        if root is not None and not os.path.isabs(folder):
            folder = os.path.join(root, folder)
        records.append(VideoRecord(folder, num_frames, lab))
    if not records:
        raise DataError(f"{path}: the file list is empty")
    return records


def write_file_list(records: Iterable[VideoRecord], path: str | os.PathLike) -> Path:
    """Write records as `path num_frames label` lines, atomically (tmp + os.replace)."""
    path = Path(path)
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(f"{r.path} {r.num_frames} {r.label}\n")
    return path


def count_frames(folder: str | os.PathLike, modality: str) -> int:
    """Frames of a folder as build_file_list/eval_net count them: the files of the modality's
    first pattern (img_* or flow_x_*; tsn.modality).

    For flow the x and y counts must match ([TSN] build_file_list raises otherwise).
    """
    folder = Path(folder)
    try:
        patterns = get_modality(modality).files
    except ValueError as err:
        raise DataError(str(err)) from None
    try:
        names = os.listdir(folder)
    except OSError:
        raise DataError(f"{folder}: frame folder missing (extract it with `tsn extract`)") from None
    prefixes = [p.split("{", 1)[0] for p in patterns]  # "img_", or "flow_x_", "flow_y_"
    counts = [sum(n.startswith(prefix) for n in names) for prefix in prefixes]
    if len(set(counts)) > 1:
        found = " but ".join(f"{c} {p[:-1]} files" for c, p in zip(counts, prefixes))
        raise DataError(f"{folder}: {found}; re-extract it")
    return counts[0]


def find_frame_dir(frame_root: str | os.PathLike, video_id: str, class_name: str) -> Path | None:
    """The frame folder of a video: flat `<root>/<video_id>` (Caffe) or `<root>/<class>/<id>`."""
    for cand in (Path(frame_root) / video_id, Path(frame_root) / class_name / video_id):
        if cand.is_dir():
            return cand
    return None


def build_records(
    frame_root: str | os.PathLike, entries: Sequence, modality: str
) -> list[VideoRecord]:
    """Records for split entries (`.video_id`, `.class_name`, `.label`) from extracted frames.

    A split entry whose folder is missing or empty raises one DataError listing the videos.
    """
    records, missing, owner = [], [], {}
    for e in entries:
        folder = find_frame_dir(frame_root, e.video_id, e.class_name)
        if folder is not None and owner.setdefault(folder, e.video) != e.video:
            raise DataError(
                f"{folder}: used by both {owner[folder]} and {e.video} (same video id in two "
                "classes); extract with `tsn extract --level 2` to keep classes apart"
            )
        n = count_frames(folder, modality) if folder is not None else 0
        if n == 0:
            missing.append(e.video_id)
            continue
        records.append(VideoRecord(str(folder), n, e.label))
    if missing:
        raise DataError(
            f"{frame_root}: {len(missing)} video(s) of the split have no extracted "
            f"{modality} frames, e.g. {', '.join(missing[:5])}; run `tsn extract` on them"
        )
    return records
