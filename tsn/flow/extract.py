"""Video -> dense_flow frame folder, and the resumable, parallel driver over many videos.

Per video (docs/caffe_release.md#dense_flow, dense_flow src/dense_flow_gpu.cpp): decode with
cv2.VideoCapture, resize every frame to 340x256 (bilinear), grey with BGR2GRAY, flow frame k-1
-> k for k >= 1, writing `img_%05d.jpg` (the resized frame k, so img_00001 is the *second*
frame), `flow_x_%05d.jpg`, `flow_y_%05d.jpg` (bound-20 encoding), 1-based, JPEG quality 95
(OpenCV's default, as imencode(".jpg")). A video with F frames gives F-1 of each. Warped flow
(docs/caffe_release.md#warped-flow) is at native resolution and writes only flow_x/flow_y (use a
separate output root, as build_of.py did).

TV-L1 runs on one of two backends: `torch` (default; OpenCV 2.4's algorithm, tsn/flow/tvl1.py)
or `opencv` (OpenCV 5's DualTVL1, one pair at a time). On a GPU the torch backend batches pairs
on the device while CPU processes decode and write (tsn/flow/pipeline.py). On the CPU every
path runs one video per process in a pool of `--workers` processes with one thread each: the
TV-L1 iteration is a long chain of small tensor operations, and two processes of one thread use
two cores better than one process of two threads (whose OpenMP threads spin-wait at every
operation when the machine is busy; docs/flow.md).

Atomic per video: everything goes to `<dst>.partial/` and is renamed to `<dst>` when complete,
so an existing `<dst>` means finished (skipped on rerun) and a leftover `.partial` is redone.
Under mpirun or torchrun each rank takes every world-th video of the sorted list
(`shard_videos`), so ranks never share a video and a rerun of the same launch resumes.

One root, one set of settings (tsn/flow/settings.py): a rerun with other settings is refused by
every rank before any video; `force=True` (`--force`) makes rank 0 delete the finished folders
of the listed videos and record the new settings (the other ranks wait for that record), so a
kill at any point leaves either the old record (a rerun is refused again) or no old folder.
A video that decodes short of its declared frame count fails (tsn/flow/batched.py read_frames).
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

from tsn.flow.batched import (  # JPEG_QUALITY, read_frames: public here since the first version
    JPEG_QUALITY,  # noqa: F401
    ExtractError,
    FlowFn,
    FrameSpec,
    extract_into,
    flow_jpegs,
    ignore_sigint,
    prepared_frames,
    read_frames,  # noqa: F401
    torch_flow_fn,
    workers_ignore_sigint,
)
from tsn.flow.batched import write_jpeg as _write_jpeg
from tsn.flow.choices import BACKENDS, FAILURE_LOG, SEMANTICS
from tsn.flow.compute import OpenCVTVL1Params, compute_flow, make_flow
from tsn.flow.encode import BOUND
from tsn.flow.warp import WarpedFlow, WarpOptions

log = logging.getLogger(__name__)

VIDEO_EXTS = (".avi", ".mp4", ".mkv", ".webm", ".mov")


@dataclass(frozen=True)
class ExtractConfig:
    """What to extract and how (defaults: dense_flow as TSN invoked it, TSN tools/build_of.py)."""

    flow: str = "tvl1"  # "tvl1" (dense_flow) | "dis" | "dis_fast" | "none" (frames only)
    warp: bool = False  # warped flow instead of frames + flow (native size, no img_)
    width: int = 340  # -w 340 -h 256 (scripts/extract_optical_flow.sh); 0 = native size
    height: int = 256
    bound: float = BOUND
    level: int = 1  # 1: <out>/<video_id> (Caffe), 2: <out>/<class>/<video_id> (mmaction2)
    tvl1_backend: str = "torch"  # "torch" (OpenCV 2.4's algorithm) | "opencv" (OpenCV 5's)
    tvl1_semantics: str = "gpu24"  # torch backend: "gpu24" (dense_flow's GPU class) | "cpu24"
    device: str = "cpu"  # torch backend: "cpu" | "cuda" | "cuda:<i>"
    batch: int = 16  # torch backend: frame pairs per tvl1_flow call
    compile: bool = False  # torch backend: torch.compile the inner iteration (same flow, faster)
    # torch backend: the device pipeline (decoders -> batched flow -> writers); None = when the
    # device is not the CPU (on the CPU a process pool of one-thread processes is faster)
    pipeline: bool | None = None
    tvl1_params: object = None  # torch backend: tsn.flow.tvl1.TVL1Params (None = 2.4 defaults)
    opencv_tvl1: OpenCVTVL1Params = OpenCVTVL1Params()  # opencv backend's settings
    warp_options: WarpOptions = WarpOptions()
    # extract what decodes of a video short of its declared frame count (batched.read_frames)
    allow_short: bool = False

    def __post_init__(self) -> None:
        if self.tvl1_backend not in BACKENDS:
            raise ValueError(f"tvl1_backend {self.tvl1_backend!r}: use one of {BACKENDS}")
        if self.tvl1_semantics not in SEMANTICS:
            raise ValueError(f"tvl1_semantics {self.tvl1_semantics!r}: use one of {SEMANTICS}")
        if self.batch < 1:
            raise ValueError(f"batch {self.batch}: at least 1 frame pair per call")

    @property
    def uses_torch(self) -> bool:
        """True when the flow comes from the torch TV-L1 (tsn/flow/pipeline.py)."""
        return self.flow == "tvl1" and self.tvl1_backend == "torch"

    @property
    def uses_pipeline(self) -> bool:
        """True when videos go through tsn/flow/pipeline.py rather than the process pool."""
        if not self.uses_torch:
            return False
        return self.device != "cpu" if self.pipeline is None else self.pipeline

    @property
    def frame_spec(self) -> FrameSpec:
        """The part of the config the decoder and writer processes need."""
        return FrameSpec(self.width, self.height, self.warp, self.warp_options, self.bound,
                         self.allow_short)

    def flow_fn(self):
        """The batched torch flow function of this config (loads torch)."""
        return torch_flow_fn(self.tvl1_semantics, self.device, self.tvl1_params, self.compile)

    def pairs_flow_fn(self) -> FlowFn:
        """(prevs, nexts) (N, H, W) uint8 -> (N, H, W, 2) flows by this config's method, as
        extraction computes them: the torch TV-L1 batched (`flow_fn`), OpenCV's TV-L1 or DIS
        one pair at a time with one flow object (`tsn predict` flows only the pairs it needs)."""
        if self.uses_torch:
            return self.flow_fn()
        if self.flow == "none" or self.warp:
            raise ValueError(f"no pairwise flow for flow={self.flow!r}, warp={self.warp}")
        flow_obj = make_flow(self.flow, self.opencv_tvl1)

        def flow(prevs: np.ndarray, nexts: np.ndarray) -> np.ndarray:
            return np.stack([compute_flow(flow_obj, p, n) for p, n in zip(prevs, nexts,
                                                                            strict=True)])

        return flow


def video_id(path: str | os.PathLike) -> str:
    """Output folder name: the file name up to the first '.' (build_of.py)."""
    return os.path.basename(str(path)).split(".")[0]


def output_dir(video: Path, out_root: Path, level: int) -> Path:
    """Where a video's frames go for the chosen layout."""
    if level == 2:
        return out_root / video.parent.name / video_id(video)
    return out_root / video_id(video)


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
    if cfg.warp and cfg.flow == "none":
        raise ExtractError("warped flow needs a flow method (--flow tvl1|dis|dis_fast)")
    if cfg.uses_torch:
        return extract_into(video, tmp, cfg.frame_spec, cfg.flow_fn(), cfg.batch)
    flow_obj = make_flow(cfg.flow, cfg.opencv_tvl1) if cfg.flow != "none" else None
    warper = WarpedFlow(flow_obj, cfg.warp_options) if cfg.warp else None
    prev, count = None, 0
    for frame, gray in prepared_frames(video, cfg.frame_spec):
        if prev is not None:
            count += 1
            if warper is not None:
                flow, _ = warper(prev, gray)
            else:
                _write_jpeg(tmp / f"img_{count:05d}.jpg", frame)
                flow = compute_flow(flow_obj, prev, gray) if flow_obj is not None else None
            if flow is not None:
                x, y = flow_jpegs(flow, cfg.bound)
                (tmp / f"flow_x_{count:05d}.jpg").write_bytes(x)
                (tmp / f"flow_y_{count:05d}.jpg").write_bytes(y)
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
    ignore_sigint()
    # before torch loads in this (spawned) process: its OpenMP pool size, and threads that
    # sleep rather than spin between the TV-L1 iteration's many small operations
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # torch.compile in this worker compiles in-process: no pool of compile workers whose
    # semaphores the pool's shutdown would leak
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")
    cv2.setNumThreads(threads)


def shard_videos(videos: list[Path], rank: int = 0, world: int = 1) -> list[Path]:
    """This rank's share of the videos: every world-th of the sorted list, from `rank`."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} outside a world of {world}")
    return sorted(videos)[rank::world]


def _log_failure(log_path: Path, video: str, err: str) -> bool:
    """Append one line to the failure log; ranks may share it (one O_APPEND write per line).
    Returns False when the log could not be written (the warning still names the video).

    A single write(2) on an O_APPEND descriptor lands whole on a local file system, so the
    ranks of an mpirun/torchrun launch append to the same log without interleaving (not
    guaranteed on NFS).
    """
    log.warning("extraction failed: %s", err)
    line = f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{video}\t{err}\n".encode()
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as log_err:  # full/read-only output: the warning above still says it
        log.error("cannot write %s: %s", log_path, log_err)
        return False
    return True


FORCE_WAIT_S = 3600.0  # under --force, how long ranks > 0 wait for rank 0's new record


def _settle_settings(videos: list[Path], out_root: Path, cfg: ExtractConfig, workers: int,
                     rank: int, world: int, force: bool) -> None:
    """Refuse other settings than the root's record (every rank, nothing extracted), or under
    `force` replace them: rank 0 deletes the finished folders of all listed videos, then
    records the new settings; the other ranks wait for that record before extracting."""
    from tsn.flow.settings import (
        check_settings,
        flow_settings,
        mismatch_error,
        read_settings,
        record_settings,
    )

    diffs = check_settings(out_root, cfg)
    if not diffs:
        if rank == 0:
            record_settings(out_root, cfg, workers=workers, world=world)
        return
    finished = [output_dir(v, out_root, cfg.level) for v in videos]
    finished = [d for d in finished if d.is_dir()]
    if not force:
        raise mismatch_error(out_root, diffs, len(finished))
    if rank == 0:
        log.warning("--force: deleting %d finished video folder(s) made with other settings "
                    "(%s)", len(finished), "; ".join(diffs))
        for folder in finished:
            shutil.rmtree(folder)
        record_settings(out_root, cfg, workers=workers, world=world, replace=True)
        ours = {output_dir(v, out_root, cfg.level) for v in videos}
        others = [p for p in _video_folders(out_root, cfg.level) if p not in ours]
        if others:
            log.warning("%d other folder(s) in %s (e.g. %s) are not among these videos and "
                        "stay as the old settings made them: delete them or extract their "
                        "videos with --force too", len(others), out_root, others[0].name)
        return
    want, deadline = flow_settings(cfg), time.monotonic() + FORCE_WAIT_S
    log.info("rank %d: waiting for rank 0 to replace the settings of %s", rank, out_root)
    while (read_settings(out_root) or {}).get("settings") != want:
        if time.monotonic() > deadline:
            raise ExtractError(f"rank {rank}: rank 0 did not record the new settings in "
                               f"{out_root} within {FORCE_WAIT_S:.0f} s")
        time.sleep(1.0)


def _video_folders(out_root: Path, level: int) -> list[Path]:
    """The finished video folders under an output root (not `.partial`, not files)."""
    tops = [p for p in out_root.iterdir() if p.is_dir() and not p.name.endswith(".partial")]
    if level == 1:
        return tops
    return [p for t in tops for p in t.iterdir()
            if p.is_dir() and not p.name.endswith(".partial")]


def extract_all(videos: list[Path], out_root: str | os.PathLike, cfg: ExtractConfig,
                workers: int = 1, progress: bool = True, rank: int = 0,
                world: int = 1, force: bool = False) -> dict[str, int]:
    """Extract every video of this rank's share not yet done; failures go to the failure log.

    Returns counts: done (this run), skipped (already finished), failed, and unlogged (the
    failures the log could not hold) when there are any. Rank 0 records the settings in
    `<out>/extract_settings.json` (tsn/flow/settings.py) before extracting; a root made with
    other settings raises SettingsMismatch on every rank unless `force` (`_settle_settings`).
    """
    from tqdm import tqdm

    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    _settle_settings(videos, out_root, cfg, workers, rank, world, force)
    jobs, skipped = [], 0
    for v in shard_videos(videos, rank, world):
        dst = output_dir(v, out_root, cfg.level)
        if dst.is_dir():
            skipped += 1
            continue
        jobs.append((v, dst))
    stats = {"done": 0, "skipped": skipped, "failed": 0}
    log_path = out_root / FAILURE_LOG

    def done(_video: str, _pairs: int) -> None:
        stats["done"] += 1

    def failed(video: str, err: str) -> None:
        stats["failed"] += 1
        if not _log_failure(log_path, video, err):
            stats["unlogged"] = stats.get("unlogged", 0) + 1

    desc = "extract" if world == 1 else f"extract rank {rank}/{world}"
    bar = tqdm(total=len(jobs), desc=desc, unit="video", disable=not progress)
    try:
        if cfg.uses_pipeline:
            from tsn.flow.pipeline import run_pipeline

            run_pipeline(jobs, cfg.frame_spec, cfg.flow_fn(), cfg.batch, workers, done, failed,
                         progress=bar.update)
        else:
            _pool(jobs, cfg, workers, done, failed, bar.update)
    finally:
        bar.close()
    return stats


def _pool(jobs: list, cfg: ExtractConfig, workers: int, done, failed, progress) -> None:
    """The CPU path: one video per task in a spawn process pool (OpenCV, DIS, torch on cpu)."""
    # one OpenCV thread per process when several processes share the cores
    threads = 1 if workers > 1 else cv2.getNumThreads()
    ctx = mp.get_context("spawn")  # fork after OpenCV used its pool can hang (dataset.py)
    with workers_ignore_sigint():  # Ctrl-C is this process's to handle: it stops the pool
        pool = ctx.Pool(max(1, workers), initializer=_init_worker, initargs=(threads,))
    try:
        for video, n, err in pool.imap_unordered(_work, [(v, d, cfg) for v, d in jobs]):
            progress(1)
            if n >= 0:
                done(video, n)
            else:
                failed(video, err)
        pool.close()  # finished: let the workers exit by themselves
    except BaseException:
        pool.terminate()  # interrupted or failed: stop them now
        raise
    finally:
        pool.join()
