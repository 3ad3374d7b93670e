"""Video -> dense_flow frame folder, and the resumable, parallel driver over many videos.

Per video (spec 6.2): decode with cv2.VideoCapture, resize every frame to 340x256 (bilinear),
grey with BGR2GRAY, flow frame k-1 -> k for k >= 1, writing `img_%05d.jpg` (the resized frame
k, so img_00001 is the *second* frame), `flow_x_%05d.jpg`, `flow_y_%05d.jpg` (bound-20
encoding), 1-based, JPEG quality 95 (OpenCV's default, as imencode(".jpg")). A video with F
frames gives F-1 of each. Warped flow (spec 6.3) is at native resolution and writes only
flow_x/flow_y (use a separate output root, as build_of.py did).

Atomic per video: everything goes to `<dst>.partial/` and is renamed to `<dst>` when complete,
so an existing `<dst>` means finished (skipped on rerun) and a leftover `.partial` is redone.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tsn.flow.compute import TVL1Params, compute_flow, make_flow
from tsn.flow.encode import BOUND, encode_flow
from tsn.flow.warp import WarpedFlow, WarpOptions

log = logging.getLogger(__name__)

VIDEO_EXTS = (".avi", ".mp4", ".mkv", ".webm", ".mov")
JPEG_QUALITY = 95  # OpenCV imencode default, what dense_flow wrote
FAILURE_LOG = "extract_failures.log"


class ExtractError(RuntimeError):
    """A video that could not be extracted (logged, never stops the run)."""


@dataclass(frozen=True)
class ExtractConfig:
    """What to extract and how (defaults: dense_flow as TSN invoked it, spec 6.1)."""

    flow: str = "tvl1"  # "tvl1" (dense_flow) | "dis" | "dis_fast" | "none" (frames only)
    warp: bool = False  # warped flow instead of frames + flow (native size, no img_)
    width: int = 340  # -w 340 -h 256 (scripts/extract_optical_flow.sh); 0 = native size
    height: int = 256
    bound: float = BOUND
    level: int = 1  # 1: <out>/<video_id> (Caffe), 2: <out>/<class>/<video_id> (mmaction2)
    tvl1: TVL1Params = TVL1Params()
    warp_options: WarpOptions = WarpOptions()


def video_id(path: str | os.PathLike) -> str:
    """Output folder name: the file name up to the first '.' (build_of.py)."""
    return os.path.basename(str(path)).split(".")[0]


def output_dir(video: Path, out_root: Path, level: int) -> Path:
    """Where a video's frames go for the chosen layout."""
    if level == 2:
        return out_root / video.parent.name / video_id(video)
    return out_root / video_id(video)


def read_frames(path: str | os.PathLike):
    """Yield the decoded BGR frames of a video; raise ExtractError if none can be read."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ExtractError(f"{path}: cannot open video (unsupported codec or not a video)")
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            yield frame
    finally:
        cap.release()
    if n == 0:
        raise ExtractError(f"{path}: no decodable frames")


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    # encode, then write with Python: cv2.imwrite hides ENOSPC/EROFS behind a bare False
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ExtractError(f"{path}: cannot encode JPEG")
    path.write_bytes(buf.tobytes())


def extract_video(video: str | os.PathLike, dst: str | os.PathLike,
                  cfg: ExtractConfig = ExtractConfig()) -> int:
    """Extract one video into `dst` atomically; returns the number of frame pairs written."""
    video, dst = Path(video), Path(dst)
    tmp = dst.with_name(dst.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)  # an interrupted earlier attempt: redo it
    tmp.mkdir(parents=True)
    try:
        count = _extract_into(video, tmp, cfg)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed video leaves no partial folder
        raise
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)
    return count


def _extract_into(video: Path, tmp: Path, cfg: ExtractConfig) -> int:
    """Write the frames and flow of `video` into the folder `tmp`; returns the pair count."""
    flow_obj = make_flow(cfg.flow, cfg.tvl1) if cfg.flow != "none" else None
    if cfg.warp and flow_obj is None:
        raise ExtractError("warped flow needs a flow method (--flow tvl1|dis|dis_fast)")
    warper = WarpedFlow(flow_obj, cfg.warp_options) if cfg.warp else None
    prev, count = None, 0
    for frame in read_frames(video):
        if not cfg.warp and cfg.width and cfg.height:
            frame = cv2.resize(frame, (cfg.width, cfg.height), interpolation=cv2.INTER_LINEAR)
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        if prev is not None:
            count += 1
            if warper is not None:
                flow, _ = warper(prev, gray)
            else:
                _write_jpeg(tmp / f"img_{count:05d}.jpg", frame)
                flow = compute_flow(flow_obj, prev, gray) if flow_obj is not None else None
            if flow is not None:
                _write_jpeg(tmp / f"flow_x_{count:05d}.jpg", encode_flow(flow[..., 0], cfg.bound))
                _write_jpeg(tmp / f"flow_y_{count:05d}.jpg", encode_flow(flow[..., 1], cfg.bound))
        prev = gray
    if count == 0:
        raise ExtractError(f"{video}: only one frame decoded; flow needs at least two")
    return count


def find_videos(src: str | os.PathLike, exts=VIDEO_EXTS) -> list[Path]:
    """Video files under `src` (recursive: UCF101 has class folders), sorted."""
    src = Path(src)
    if src.is_file():
        return [src]
    return sorted(p for p in src.rglob("*") if p.suffix.lower() in exts and p.is_file())


def _work(job: tuple) -> tuple[str, int, str]:
    """Pool task: (video, pairs written or -1, error message)."""
    video, dst, cfg = job
    try:
        return str(video), extract_video(video, dst, cfg), ""
    except Exception as err:  # noqa: BLE001 -- any failure is logged, the run goes on
        return str(video), -1, f"{type(err).__name__}: {err}"


def _init_worker(threads: int) -> None:
    cv2.setNumThreads(threads)


def extract_all(videos: list[Path], out_root: str | os.PathLike, cfg: ExtractConfig,
                workers: int = 1, progress: bool = True) -> dict[str, int]:
    """Extract every video not yet done; failures go to `<out>/extract_failures.log`.

    Returns counts: done (this run), skipped (already finished), failed.
    """
    from tqdm import tqdm

    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    jobs, skipped = [], 0
    for v in videos:
        dst = output_dir(v, out_root, cfg.level)
        if dst.is_dir():
            skipped += 1
            continue
        jobs.append((v, dst, cfg))
    stats = {"done": 0, "skipped": skipped, "failed": 0}
    log_path = out_root / FAILURE_LOG
    # one OpenCV thread per process when several processes share the cores
    threads = 1 if workers > 1 else cv2.getNumThreads()
    ctx = mp.get_context("spawn")  # fork after OpenCV used its pool can hang (dataset.py)
    bar = tqdm(total=len(jobs), desc="extract", unit="video", disable=not progress)
    with ctx.Pool(max(1, workers), initializer=_init_worker, initargs=(threads,)) as pool:
        for video, n, err in pool.imap_unordered(_work, jobs):
            bar.update(1)
            if n >= 0:
                stats["done"] += 1
                continue
            stats["failed"] += 1
            log.warning("extraction failed: %s", err)
            try:
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{video}\t{err}\n")
            except OSError as log_err:  # full/read-only output: the warning above still says it
                log.error("cannot write %s: %s", log_path, log_err)
    bar.close()
    return stats
