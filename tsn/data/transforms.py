"""Caffe `DataTransformer` augmentation and eval_net.py oversampling, as pure functions.

Arrays are HWC uint8 stacks in BGR (rgb) or x,y-interleaved (flow) channel order; one set of
crop/flip parameters is drawn per video and applied to all its channels (data_transformer.cpp,
docs/caffe_release.md#augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

CROP_SIZE = 224  # train_val crop_size
EVAL_SIZE = (340, 256)  # eval_net.py cv2.resize target (width, height)
# train_val scale_ratios (released code): flow drops 0.66 (docs/caffe_release.md#videodata)
RELEASE_SCALE_RATIOS = {"rgb": (1.0, 0.875, 0.75, 0.66), "flow": (1.0, 0.875, 0.75)}
# paper section 3.2: {256, 224, 192, 168} for every modality
PAPER_SCALE_RATIOS = {"rgb": (1.0, 0.875, 0.75, 0.66), "flow": (1.0, 0.875, 0.75, 0.66)}
# fix_crop offsets in units of (H - crop_h) / 4, (W - crop_w) / 4: 4 corners + centre ...
FIX_CROP_UNITS = ((0, 0), (0, 4), (4, 0), (4, 4), (2, 2))
# ... and with more_fix_crop (release default) 8 more: edge centres and quarter points
MORE_FIX_CROP_UNITS = ((0, 2), (4, 2), (2, 0), (2, 4), (1, 1), (1, 3), (3, 1), (3, 3))


@dataclass(frozen=True)
class Crop:
    """One crop decision: box (offsets and size, pixels) and whether to mirror."""

    h_off: int
    w_off: int
    crop_h: int
    crop_w: int
    mirror: bool


def scale_pairs(
    height: int, width: int, ratios, crop_size: int = CROP_SIZE, max_distort: int = 1
) -> list[tuple[int, int]]:
    """(crop_h, crop_w) candidates: sizes int(min(H,W) * r), snapped to 224 within 3 px,
    ratio-index pairs (i, j) with |i - j| <= max_distort, i over heights
    (docs/caffe_release.md#augmentation step 2)."""
    base = min(height, width)
    sizes = []
    for r in ratios:
        s = int(base * r)
        sizes.append(crop_size if abs(s - crop_size) < 3 else s)
    return [
        (sizes[i], sizes[j])
        for i in range(len(sizes)) for j in range(len(sizes)) if abs(i - j) <= max_distort
    ]


def fix_crop_offsets(
    height: int, width: int, crop_h: int, crop_w: int, more_fix_crop: bool = True
) -> list[tuple[int, int]]:
    """(h_off, w_off) of the 5 (or 13 with more_fix_crop) fixed positions
    (docs/caffe_release.md#augmentation step 3)."""
    h_unit, w_unit = (height - crop_h) // 4, (width - crop_w) // 4
    units = FIX_CROP_UNITS + (MORE_FIX_CROP_UNITS if more_fix_crop else ())
    return [(a * h_unit, b * w_unit) for a, b in units]


def draw_train_crop(
    rng: np.random.Generator, height: int, width: int, ratios, more_fix_crop: bool = True,
    mirror: bool = True, max_distort: int = 1,
) -> Crop:
    """TRAIN crop in Caffe's draw order: mirror bit, scale pair, fixed position."""
    do_mirror = bool(mirror and rng.integers(2))
    table = _crop_table(height, width, tuple(ratios), more_fix_crop, max_distort)
    crop_h, crop_w, offsets = table[rng.integers(len(table))]
    h_off, w_off = offsets[rng.integers(len(offsets))]
    return Crop(h_off, w_off, crop_h, crop_w, do_mirror)


@lru_cache(maxsize=64)
def _crop_table(height: int, width: int, ratios: tuple, more_fix_crop: bool, max_distort: int):
    """Scale pairs with their fixed positions, per frame size (cached: one dataset has a few
    frame sizes, and rebuilding the table was ~1% of a training sample)."""
    return tuple((h, w, tuple(fix_crop_offsets(height, width, h, w, more_fix_crop)))
                 for h, w in scale_pairs(height, width, ratios, max_distort=max_distort))


def center_crop(height: int, width: int, crop_size: int = CROP_SIZE) -> Crop:
    """TEST phase of train_val: `(H - 224) / 2`, `(W - 224) / 2`, no mirror."""
    return Crop((height - crop_size) // 2, (width - crop_size) // 2, crop_size, crop_size, False)


def oversample_crops(
    height: int, width: int, crop_size: int = CROP_SIZE, num_crops: int = 10
) -> list[Crop]:
    """caffe.io.oversample order: TL, TR, BL, BR, centre, then the same 5 mirrored.

    num_crops=1 gives the centre crop only. Centre = int(dim / 2 - crop / 2) as oversample
    computes it in floats.
    """
    h_idx, w_idx = (0, height - crop_size), (0, width - crop_size)
    boxes = [(h, w) for h in h_idx for w in w_idx]
    boxes.append((int(height / 2.0 - crop_size / 2.0), int(width / 2.0 - crop_size / 2.0)))
    if num_crops == 1:
        return [Crop(*boxes[4], crop_size, crop_size, False)]
    if num_crops != 10:
        raise ValueError(f"num_crops must be 10 or 1, got {num_crops}")
    return [Crop(h, w, crop_size, crop_size, m) for m in (False, True) for h, w in boxes]


def apply_crop(stack: np.ndarray, crop: Crop, is_flow: bool, size: int = CROP_SIZE) -> np.ndarray:
    """Crop, bilinear-resize to size x size if needed, mirror (flow x -> 255 - x): HWC uint8.

    cv2.resize of a multi-channel array equals Caffe's per-channel cv::resize (same bilinear
    fixed-point kernel; checked in tests). A crop already at `size` is copied, not resampled.
    """
    out = stack[crop.h_off:crop.h_off + crop.crop_h, crop.w_off:crop.w_off + crop.crop_w]
    if out.ndim == 2:
        out = out[:, :, None]
    if (crop.crop_h, crop.crop_w) != (size, size):
        out = cv2.resize(np.ascontiguousarray(out), (size, size), interpolation=cv2.INTER_LINEAR)
        if out.ndim == 2:  # cv2 drops a single channel axis
            out = out[:, :, None]
    if crop.mirror:
        out = out[:, ::-1]
        if is_flow:
            out = np.ascontiguousarray(out)
            # Caffe data_transformer: x components (even channels) of a mirrored flow -> 255 - v
            out[:, :, 0::2] = 255 - out[:, :, 0::2]
    return out


def to_chw_float(stack: np.ndarray, mean) -> np.ndarray:
    """HWC uint8 -> CHW float32 minus the per-channel mean (repeated cyclically), no scale."""
    mean = np.asarray(mean, dtype=np.float32)
    reps = stack.shape[2] // mean.size
    chw = np.empty((stack.shape[2],) + stack.shape[:2], dtype=np.float32)
    np.subtract(stack.transpose(2, 0, 1), np.tile(mean, reps)[:, None, None], out=chw)
    return chw
