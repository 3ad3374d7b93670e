"""Which frames a snippet reads: Caffe VideoData (train/val) and eval_net.py (test).

Offsets are 0-based and frame files 1-based: a snippet at offset o reads files o+1 .. o+new_length
(video_data_layer.cpp, docs/caffe_release.md#sampling). Frames beyond num_segments * avg (the
remainder) are never used in training, as in Caffe.
"""

from __future__ import annotations

import numpy as np

from tsn.data.errors import DataError

EVAL_NUM_FRAMES = 25  # eval_net.py num_frame_per_video (docs/caffe_release.md#testing)


def check_length(video: str, num_frames: int, window: int) -> None:
    """One clear error when a video is shorter than one snippet needs."""
    if num_frames < window:
        raise DataError(
            f"{video}: {num_frames} frame(s), but a snippet reads {window} consecutive frames; "
            "drop the video from the list or re-extract it"
        )


def train_offsets(
    num_frames: int, num_segments: int, new_length: int, rng: np.random.Generator
) -> np.ndarray:
    """TRAIN: one random offset per segment, `rand() % (avg - L + 1) + i * avg`
    (video_data_layer.cpp).

    With `avg < new_length` every segment reads from offset 0 (Caffe's fallback).
    """
    avg = num_frames // num_segments
    if avg >= new_length:
        rand = rng.integers(0, avg - new_length + 1, size=num_segments)
        return rand + np.arange(num_segments) * avg
    return np.zeros(num_segments, dtype=np.int64)


def val_offsets(num_frames: int, num_segments: int, new_length: int) -> np.ndarray:
    """TEST phase of the train_val net: centre of each segment, `(avg - L + 1) / 2 + i * avg`."""
    avg = num_frames // num_segments
    if avg >= new_length:
        return (avg - new_length + 1) // 2 + np.arange(num_segments) * avg
    return np.zeros(num_segments, dtype=np.int64)


def snippet_files(offset: int, new_length: int) -> list[int]:
    """1-based file indices read by the snippet at 0-based `offset` (Caffe VideoData)."""
    return [int(offset) + 1 + k for k in range(new_length)]


def eval_ticks(num_frames: int, stack_depth: int, num_ticks: int = EVAL_NUM_FRAMES) -> list[int]:
    """eval_net.py frame ticks (1-based): `step = (cnt - d) // 24`, ticks 1, 1+step, ...

    If step <= 0 all ticks are 1 (eval_net.py). The general form uses `num_ticks - 1`, which is
    undefined for one tick (eval_net.py divides by zero there). One tick is the centre of the
    video: `(cnt - d + 1) // 2 + 1`, the rule of the train_val TEST phase (`val_offsets`) with
    one segment. The centre, not frame 1, because a single snippet should be the most typical
    one (first frames are often fades or titles), and this keeps --frames 1 equal to what the
    validation net sees with one segment; a video shorter than a stack gives 1 as above.
    """
    if num_ticks < 1:
        raise DataError(f"need at least one test frame per video, got {num_ticks}")
    if num_ticks == 1:
        return [int(val_offsets(num_frames, 1, stack_depth)[0]) + 1]
    step = (num_frames - stack_depth) // (num_ticks - 1)
    if step > 0:
        return [1 + step * i for i in range(num_ticks)]
    return [1] * num_ticks


def eval_stack_files(tick: int, num_frames: int, stack_depth: int) -> list[int]:
    """Files of one test stack: `min(frame_cnt, tick + k)` for k < depth (eval_net flow)."""
    return [min(num_frames, tick + k) for k in range(stack_depth)]
