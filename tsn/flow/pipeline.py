"""The torch TV-L1 driver: CPU processes decode and write JPEGs, this process flows batches.

    decoders (--workers)  --frame queue-->  this process (owns the device)  --write queue-->
    writers (--workers)   --acks-->         this process (renames finished videos)

* A decoder takes one video at a time, writes its img_ files into `<dst>.partial/` (or, for
  warped flow, computes each pair's feature matches and corners) and sends its grey frames in
  chunks of up to `--batch` pairs.
* This process stacks pairs, across videos of the same frame size, into batches of `--batch`
  pairs and calls tvl1_flow once per batch (twice for warped flow, with the homography and warp
  between, on this process's CPU). If a batch fails, its videos are retried one by one so only
  the broken video fails.
* A writer encodes flow_x/flow_y (bound 20) and writes them into the video's `.partial`.
* When a video's last pair is written, `.partial` is renamed to the final folder: an existing
  folder still means finished, as in the OpenCV path (tsn/flow/extract.py).

Memory is bounded by the two queue sizes (`2 x workers + 2` chunks of grey frames, `workers`
batches of float32 flow) plus one batch here. A decoder or writer process that dies (e.g. the
OOM killer) is reported: its video fails, a lost decoder is replaced, and a lost writer stops
the run (its pending writes cannot be attributed), which a rerun resumes.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import queue
import shutil
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from tsn.flow.batched import (
    Chunk,
    ExtractError,
    FlowFn,
    FrameSpec,
    chunk_flows,
    decode_chunks,
    fresh_partial,
    ignore_sigint,
    workers_ignore_sigint,
    write_flows,
)

log = logging.getLogger(__name__)



POLL_S = 0.5  # how often blocked queue calls look at their peers


def _parent_alive() -> bool:
    parent = mp.parent_process()
    return parent is None or parent.is_alive()


def _put(q, item) -> bool:
    """Put, waiting while the queue is full; False when the parent process has died."""
    while True:
        try:
            q.put(item, timeout=POLL_S)
            return True
        except queue.Full:
            if not _parent_alive():
                return False


def _decoder(worker: int, jobs, frames_q, spec: FrameSpec, pairs: int) -> None:
    """Decoder process: (index, video, tmp) jobs -> start / chunk / end / fail messages."""
    ignore_sigint()  # Ctrl-C is the main process's to handle: it stops this one
    cv2.setNumThreads(1)  # one OpenCV thread per process: the processes share the cores
    while True:
        job = jobs.get()
        if job is None:
            _put(frames_q, ("exit", worker))
            return
        index, video, tmp = job
        if not _put(frames_q, ("start", index, worker)):
            return
        try:
            fresh_partial(Path(tmp))
            count = 0
            for chunk in decode_chunks(video, Path(tmp), spec, pairs, index):
                count += chunk.pairs
                if not _put(frames_q, ("chunk", chunk)):
                    return
            message = ("end", index, count)
        except Exception as err:  # noqa: BLE001 -- any failure is this video's, the run goes on
            message = ("fail", index, f"{type(err).__name__}: {err}")
        if not _put(frames_q, message):
            return


def _writer(writes, acks, bound: float) -> None:
    """Writer process: (index, tmp, k0, flows) -> flow JPEGs, acked as written / fail."""
    ignore_sigint()
    cv2.setNumThreads(1)
    while True:
        try:
            job = writes.get(timeout=POLL_S)
        except queue.Empty:
            if not _parent_alive():
                return
            continue
        if job is None:
            return
        index, tmp, k0, flows = job
        try:
            write_flows(Path(tmp), k0, flows, bound)
            acks.put((index, len(flows), ""))
        except Exception as err:  # noqa: BLE001 -- reported against the video
            acks.put((index, len(flows), f"{type(err).__name__}: {err}"))


@dataclass
class _Video:
    """Progress of one video through the pipeline."""

    video: Path
    dst: Path
    sent: int = 0  # pairs sent to the writers
    written: int = 0  # pairs acknowledged by the writers
    total: int | None = None  # pairs in the video, known at its "end" message
    error: str = ""
    closed: bool = False  # decoder finished it (end or fail)

    @property
    def tmp(self) -> Path:
        return self.dst.with_name(self.dst.name + ".partial")


@dataclass
class _State:
    """This process's view of the pipeline."""

    videos: list[_Video]
    on_done: Callable[[str, int], None]
    on_fail: Callable[[str, str], None]
    pending: deque = field(default_factory=deque)  # chunks waiting for the device
    busy: dict = field(default_factory=dict)  # decoder id -> video index it works on
    finished: int = 0

    def fail(self, index: int, message: str) -> None:
        v = self.videos[index]
        if not v.error:
            v.error = message
        v.closed = True
        self.settle(index)

    def settle(self, index: int) -> None:
        """Rename or remove a video's folder once nothing of it is in flight."""
        v = self.videos[index]
        if v.dst is None or v.sent != v.written or not v.closed:
            return
        if not v.error and v.total != v.written:
            return  # pairs still queued for the device
        if not v.error:
            try:
                if v.dst.exists():
                    shutil.rmtree(v.dst)
                v.tmp.replace(v.dst)
            except OSError as err:  # e.g. a read-only output: this video fails, the run goes on
                v.error = f"{type(err).__name__}: {err}"
        if v.error:
            shutil.rmtree(v.tmp, ignore_errors=True)  # a failed video leaves no partial folder
            self.on_fail(str(v.video), v.error)
        else:
            self.on_done(str(v.video), v.written)
        v.dst = None  # settled
        self.finished += 1


def _take_batch(state: _State, batch: int) -> list[Chunk]:
    """Up to `batch` pairs from the pending chunks, all of the first chunk's frame size."""
    out, n = [], 0
    while state.pending and n < batch:
        c = state.pending[0]
        if state.videos[c.index].error:
            state.pending.popleft()  # its video already failed
            continue
        if out and c.frames.shape[1:] != out[0].frames.shape[1:]:
            break
        room = batch - n
        if c.pairs <= room:
            out.append(state.pending.popleft())
            n += c.pairs
        else:  # split: the rest stays first in line
            cues = c.cues
            out.append(Chunk(c.index, c.k0, c.frames[:room + 1],
                             cues[:room] if cues is not None else None))
            state.pending[0] = Chunk(c.index, c.k0 + room, c.frames[room:],
                                     cues[room:] if cues is not None else None)
            n += room
    return out


def _compute(state: _State, chunks: list[Chunk], flow_fn: FlowFn, spec: FrameSpec) -> list:
    """(chunk, flows) for the chunks whose flow could be computed; failures fail the video."""
    try:
        return list(zip(chunks, chunk_flows(chunks, flow_fn, spec), strict=True))
    except Exception as err:  # noqa: BLE001
        indices = list(dict.fromkeys(c.index for c in chunks))
        if len(indices) == 1:
            state.fail(indices[0], f"{type(err).__name__}: {err}")
            return []
        out = []  # several videos: find the one that breaks, let the others through
        for index in indices:
            out += _compute(state, [c for c in chunks if c.index == index], flow_fn, spec)
        return out


def _dead(procs: list) -> list[int]:
    """Positions of the processes in `procs` that died (exited other than cleanly)."""
    return [i for i, p in enumerate(procs) if not p.is_alive() and p.exitcode not in (0, None)]


def run_pipeline(jobs: list[tuple[Path, Path]], spec: FrameSpec, flow_fn: FlowFn, batch: int,
                 workers: int, on_done: Callable[[str, int], None],
                 on_fail: Callable[[str, str], None], progress=None) -> None:
    """Extract every (video, dst) job; on_done(video, pairs) / on_fail(video, message) each.

    `progress` is called with the number of videos settled since the last call.
    """
    if not jobs:
        return
    workers, batch = max(1, workers), max(1, batch)
    ctx = mp.get_context("spawn")  # fork after OpenCV or torch started threads can hang
    job_q, frames_q = ctx.Queue(), ctx.Queue(maxsize=2 * workers + 2)
    writes_q, acks_q = ctx.Queue(maxsize=workers), ctx.Queue()
    state = _State([_Video(v, d) for v, d in jobs], on_done, on_fail)
    for i, (video, dst) in enumerate(jobs):
        job_q.put((i, str(video), str(dst.with_name(dst.name + ".partial"))))
    for _ in range(workers):
        job_q.put(None)

    def decoder(w: int):
        p = ctx.Process(target=_decoder, args=(w, job_q, frames_q, spec, batch), daemon=True)
        with workers_ignore_sigint():  # Ctrl-C is this process's to handle
            p.start()
        return p

    decoders = [decoder(w) for w in range(workers)]
    writers = [ctx.Process(target=_writer, args=(writes_q, acks_q, spec.bound), daemon=True)
               for _ in range(workers)]
    with workers_ignore_sigint():
        for p in writers:
            p.start()
    active, restarts, reported = set(range(workers)), 0, 0
    try:
        while state.finished < len(jobs):
            _drain_acks(state, acks_q)
            queued = sum(c.pairs for c in state.pending)
            if queued >= batch or (queued and not active):
                chunks = _take_batch(state, batch)
                for chunk, flows in _compute(state, chunks, flow_fn, spec) if chunks else []:
                    v = state.videos[chunk.index]
                    if v.error:
                        continue
                    v.sent += chunk.pairs
                    _put_write(writes_q, writers, (chunk.index, str(v.tmp), chunk.k0, flows))
            elif active:
                try:
                    _handle(state, frames_q.get(timeout=POLL_S), active)
                except queue.Empty:
                    for w in _dead(decoders):
                        restarts += 1
                        if restarts > 3 * workers:
                            raise ExtractError("decoder processes keep dying; stopping") from None
                        lost = state.busy.pop(w, None)
                        code = decoders[w].exitcode
                        job_q.put(None)  # in case the dead one had taken its end marker
                        decoders[w] = decoder(w)
                        if lost is not None:
                            state.fail(lost, f"decoder process died (exit code {code})")
            elif any(v.dst is not None and v.sent != v.written for v in state.videos):
                _wait_acks(state, acks_q, writers)
            else:  # nothing in flight, yet unsettled videos: a decoder died before "start"
                for i, v in enumerate(state.videos):
                    if v.dst is not None:
                        state.fail(i, "lost: its decoder process died before reporting it")
            if progress is not None and state.finished > reported:
                progress(state.finished - reported)
                reported = state.finished
        for _ in writers:
            writes_q.put(None)
        for p in decoders + writers:
            p.join(timeout=30)
    finally:
        for p in decoders + writers:
            if p.is_alive():
                p.terminate()


def _handle(state: _State, msg: tuple, active: set) -> None:
    """Act on one decoder message."""
    kind = msg[0]
    if kind == "chunk":
        chunk = msg[1]
        if not state.videos[chunk.index].error:
            state.pending.append(chunk)
    elif kind == "start":
        state.busy[msg[2]] = msg[1]
    elif kind == "end":
        v = state.videos[msg[1]]
        v.total, v.closed = msg[2], True
        _release(state, msg[1])
        state.settle(msg[1])
    elif kind == "fail":
        _release(state, msg[1])
        state.fail(msg[1], msg[2])
    elif kind == "exit":
        active.discard(msg[1])


def _release(state: _State, index: int) -> None:
    for w, i in list(state.busy.items()):
        if i == index:
            del state.busy[w]


def _ack(state: _State, msg: tuple) -> None:
    """A writer finished `pairs` pairs of a video (`error`: they failed, so does the video)."""
    index, pairs, error = msg
    v = state.videos[index]
    v.written += pairs
    if error and not v.error:
        v.error = error
    state.settle(index)


def _drain_acks(state: _State, acks_q) -> None:
    while True:
        try:
            msg = acks_q.get_nowait()
        except queue.Empty:
            return
        _ack(state, msg)


def _wait_acks(state: _State, acks_q, writers: list) -> None:
    try:
        _ack(state, acks_q.get(timeout=POLL_S))
    except queue.Empty:
        if _dead(writers):
            raise ExtractError("a flow writer process died; rerun to resume") from None


def _put_write(writes_q, writers: list, item) -> None:
    while True:
        try:
            writes_q.put(item, timeout=POLL_S)
            return
        except queue.Full:
            if _dead(writers):
                raise ExtractError("a flow writer process died; rerun to resume") from None
