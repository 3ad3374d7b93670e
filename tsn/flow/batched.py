"""The torch TV-L1 path's pieces: decode a video into chunks of pairs, flow a batch, write it.

dense_flow ([DF] src/dense_flow_gpu.cpp) flows one pair at a time; here the pairs
(prev = frame k-1, next = frame k) of one or several videos are stacked and sent to
`tsn.flow.tvl1.tvl1_flow` together, which keeps each pair's result independent of its batch.
Decoding, resizing and JPEG writing are exactly those of the OpenCV path (tsn/flow/extract.py:
cv2.VideoCapture, cv2.resize INTER_LINEAR to 340x256, BGR2GRAY, imencode quality 95).

This module never imports torch at module level: the decoder and writer processes of
tsn/flow/pipeline.py import it and only the process that owns the device loads torch.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tsn.flow.encode import BOUND, encode_flow
from tsn.flow.warp import PairCues, WarpCues, WarpOptions, warp_with_flow

JPEG_QUALITY = 95  # OpenCV imencode default, what dense_flow wrote
# A video that decodes fewer frames than its container declares (cv2.CAP_PROP_FRAME_COUNT) is
# truncated or damaged and fails, unless --allow-short; containers over-declare by a frame or
# two, so a shortfall of max(SHORT_TOLERANCE_FRAMES, SHORT_TOLERANCE_FRACTION x declared)
# frames is accepted (docs/data.md "Extraction").
SHORT_TOLERANCE_FRAMES = 2
SHORT_TOLERANCE_FRACTION = 0.01


class ExtractError(RuntimeError):
    """A video that could not be extracted (logged, never stops the run)."""


@dataclass(frozen=True)
class FrameSpec:
    """How frames are prepared and flow written (the part of ExtractConfig workers need)."""

    width: int = 340  # 0 = native size
    height: int = 256
    warp: bool = False  # warped flow: native size, no img_ files, cues per pair
    warp_options: WarpOptions = WarpOptions()
    bound: float = BOUND
    allow_short: bool = False  # extract what decodes even when frames are missing (read_frames)


@dataclass
class Chunk:
    """Consecutive pairs of one video: frames[i] -> frames[i + 1] is pair number k0 + i."""

    index: int  # the video's position in the job list
    k0: int  # 1-based number of the first pair (its flow goes to flow_x_{k0:05d}.jpg)
    frames: np.ndarray  # (pairs + 1, H, W) uint8 grey, consecutive frames
    cues: list[PairCues] | None = None  # warped flow only: one per pair

    @property
    def pairs(self) -> int:
        """Number of frame pairs in the chunk."""
        return len(self.frames) - 1


def short_tolerance(declared: int) -> int:
    """Missing frames accepted for a video whose container declares `declared` frames."""
    return max(SHORT_TOLERANCE_FRAMES, int(declared * SHORT_TOLERANCE_FRACTION))


def read_frames(path: str | os.PathLike, allow_short: bool = False) -> Iterator[np.ndarray]:
    """Yield the decoded BGR frames of a video; raise ExtractError if none can be read, or,
    once decoding stops, if more than `short_tolerance` of the frames the container declares
    are missing (a truncated or damaged file) unless `allow_short`. A container that declares
    no count (0 or less) is not checked."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ExtractError(f"{path}: cannot open video (unsupported codec or not a video)")
    declared = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
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
    if not allow_short and declared > 0 and n < declared - short_tolerance(declared):
        raise ExtractError(
            f"{path}: only {n} of the {declared} frames its container declares decode (a "
            f"truncated or damaged file; up to {short_tolerance(declared)} missing frames are "
            f"tolerated); re-download it, or pass --allow-short to extract the {n} frames")


def prepare_frame(frame: np.ndarray, spec: FrameSpec) -> tuple[np.ndarray, np.ndarray]:
    """(BGR frame as written to img_, grey frame for flow) of one decoded frame, dense_flow's
    way: resized to width x height with INTER_LINEAR unless warped flow (native size:
    dense_warp_flow_gpu.cpp has no resize) or a 0 size; grey by BGR2GRAY."""
    if not spec.warp and spec.width and spec.height:
        frame = cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    return frame, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def prepared_frames(video: str | os.PathLike, spec: FrameSpec):
    """Yield (BGR frame as written to img_, grey frame for flow) of every frame, dense_flow's
    way (`prepare_frame`)."""
    for frame in read_frames(video, spec.allow_short):
        yield prepare_frame(frame, spec)


def selected_frames(video: str | os.PathLike, spec: FrameSpec, wanted: set[int],
                    progress=None) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (0-based index, BGR, grey) of the decoded frames whose index is in `wanted`,
    prepared as `prepared_frames` prepares every frame (`tsn predict` keeps only the frames
    its snippets need). `progress(n)` is called once per decoded frame."""
    last = max(wanted, default=-1)
    for index, frame in enumerate(read_frames(video, spec.allow_short)):
        if progress is not None:
            progress(1)
        if index in wanted:
            yield (index, *prepare_frame(frame, spec))
        if index >= last:
            return


def encode_jpeg(image: np.ndarray, what: str = "frame") -> bytes:
    """The bytes of `image` as a JPEG at quality 95 (cv2.imencode, what dense_flow wrote)."""
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ExtractError(f"{what}: cannot encode JPEG")
    return buf.tobytes()


def write_jpeg(path: Path, image: np.ndarray) -> None:
    """imencode at quality 95, then a Python write (cv2.imwrite hides ENOSPC/EROFS)."""
    path.write_bytes(encode_jpeg(image, str(path)))


def flow_jpegs(flow: np.ndarray, bound: float = BOUND) -> tuple[bytes, bytes]:
    """The flow_x_ and flow_y_ JPEG bytes of one (H, W, 2) flow (bound-20 encoding,
    common.cpp), exactly what `write_flows` writes."""
    return (encode_jpeg(encode_flow(flow[..., 0], bound), "flow x"),
            encode_jpeg(encode_flow(flow[..., 1], bound), "flow y"))


def ignore_sigint() -> None:
    """In a worker process (pool worker, decoder, writer): leave Ctrl-C to the main process,
    which stops the workers (a Ctrl-C reaches the whole process group, and each worker would
    print a traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def workers_ignore_sigint():
    """Start worker processes inside this block: they are born ignoring SIGINT (an ignored
    signal stays ignored across exec, and Python then installs no KeyboardInterrupt handler),
    so a Ctrl-C while one is still importing prints no traceback either. This process ignores
    SIGINT only while the block runs (outside the main thread it changes nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def fresh_partial(tmp: Path) -> None:
    """Start `<dst>.partial` empty (a leftover from an interrupted attempt is redone)."""
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)


def decode_chunks(video: str | os.PathLike, tmp: Path, spec: FrameSpec, pairs: int,
                  index: int = 0) -> Iterator[Chunk]:
    """Decode `video`, write its img_ files into `tmp`, yield chunks of up to `pairs` pairs.

    Consecutive chunks share one frame (the last of one is the first of the next). Raises
    ExtractError when fewer than two frames decode (after yielding nothing).
    """
    cues = WarpCues(spec.warp_options) if spec.warp else None
    frames: list[np.ndarray] = []
    pair_cues: list[PairCues] = []
    count, k0 = 0, 1
    for frame, gray in prepared_frames(video, spec):
        if frames:
            count += 1
            if cues is not None:
                pair_cues.append(cues(frames[-1], gray))
            else:
                write_jpeg(tmp / f"img_{count:05d}.jpg", frame)
        frames.append(gray)
        if len(frames) == pairs + 1:
            yield Chunk(index, k0, np.stack(frames), pair_cues if cues is not None else None)
            k0 += pairs
            frames, pair_cues = [frames[-1]], []
    if count == 0:
        raise ExtractError(f"{video}: only one frame decoded; flow needs at least two")
    if len(frames) > 1:
        yield Chunk(index, k0, np.stack(frames), pair_cues if cues is not None else None)


FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def torch_flow_fn(semantics: str = "gpu24", device: str = "cpu", params=None,
                  compile: bool = False) -> FlowFn:
    """(prevs, nexts) uint8 (N, H, W) -> (N, H, W, 2) float32 by the torch TV-L1 (tvl1.py).

    `compile`: the inner iteration through torch.compile (same flow, faster on long runs).
    """
    from tsn.flow.tvl1 import tvl1_flow

    def flow(prevs: np.ndarray, nexts: np.ndarray) -> np.ndarray:
        return tvl1_flow(prevs, nexts, semantics=semantics, device=device, params=params,
                         compile=compile)

    return flow


def chunk_flows(chunks: list[Chunk], flow_fn: FlowFn, spec: FrameSpec) -> list[np.ndarray]:
    """The flows to write for each chunk, computed in one batch over all their pairs.

    All chunks must have frames of one size. Warped flow (dense_warp_flow_gpu.cpp) runs two batches:
    the flow prev -> next, then, after each pair's homography and warp on the CPU, the flow prev ->
    warped next.
    """
    prevs = np.concatenate([c.frames[:-1] for c in chunks])
    nexts = np.concatenate([c.frames[1:] for c in chunks])
    flows = flow_fn(prevs, nexts)
    if spec.warp:
        cues = [q for c in chunks for q in c.cues]
        warped = np.stack([warp_with_flow(p, n, f, q, spec.warp_options)[0]
                           for p, n, f, q in zip(prevs, nexts, flows, cues, strict=True)])
        flows = flow_fn(prevs, warped)
    out, start = [], 0
    for c in chunks:
        out.append(flows[start:start + c.pairs])
        start += c.pairs
    return out


def write_flows(tmp: Path, k0: int, flows: np.ndarray, bound: float = BOUND) -> None:
    """flow_x_/flow_y_ JPEGs of pairs k0, k0 + 1, ... (bound-20 encoding, common.cpp)."""
    for i, flow in enumerate(flows):
        x, y = flow_jpegs(flow, bound)
        (tmp / f"flow_x_{k0 + i:05d}.jpg").write_bytes(x)
        (tmp / f"flow_y_{k0 + i:05d}.jpg").write_bytes(y)


def extract_into(video: str | os.PathLike, tmp: Path, spec: FrameSpec, flow_fn: FlowFn,
                 batch: int) -> int:
    """One video in this process, `batch` pairs per flow call; returns the pair count."""
    count = 0
    for chunk in decode_chunks(video, tmp, spec, batch):
        write_flows(tmp, chunk.k0, chunk_flows([chunk], flow_fn, spec)[0], spec.bound)
        count += chunk.pairs
    return count
