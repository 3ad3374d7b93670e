"""Snippet indices (Caffe VideoData, eval_net.py) and crop boxes / flips (DataTransformer)
against the rules of docs/caffe_release.md#sampling, #augmentation and #testing."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsn.data import sampling, transforms
from tsn.data.errors import DataError
from tsn.modality import RGB_MEAN_BGR


def test_train_offsets_one_per_segment_within_segment():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(300):
        off = sampling.train_offsets(100, 3, 5, rng)  # avg 33 -> rand % 29 + i*33
        for i, o in enumerate(off):
            assert i * 33 <= o <= i * 33 + 28
        seen.add(tuple(off))
    assert len(seen) > 100  # really random
    lo = [min(s[i] for s in seen) for i in range(3)]
    hi = [max(s[i] for s in seen) for i in range(3)]
    assert lo == [0, 33, 66] and hi == [28, 61, 94]  # remainder frame 100 never used


def test_short_video_falls_back_to_offset_zero_and_too_short_errors():
    rng = np.random.default_rng(0)
    assert list(sampling.train_offsets(12, 3, 5, rng)) == [0, 0, 0]  # avg 4 < 5
    assert list(sampling.val_offsets(12, 3, 5)) == [0, 0, 0]
    with pytest.raises(DataError, match="vid7: 3 frame"):
        sampling.check_length("vid7", 3, 5)


def test_val_offsets_segment_centres():
    # (avg - L + 1) // 2 + i * avg, integer division
    assert list(sampling.val_offsets(100, 3, 1)) == [16, 49, 82]
    assert list(sampling.val_offsets(100, 3, 5)) == [14, 47, 80]
    assert sampling.snippet_files(14, 5) == [15, 16, 17, 18, 19]


def test_eval_ticks_match_eval_net_examples():
    # eval_net.py: 150 frames -> step 6; 100 frames -> rgb step 4, flow step 3
    assert sampling.eval_ticks(150, 1) == list(range(1, 146, 6))
    assert sampling.eval_ticks(150, 5) == list(range(1, 146, 6))
    assert sampling.eval_ticks(100, 1)[-1] == 97 and sampling.eval_ticks(100, 5)[-1] == 73
    assert sampling.eval_ticks(20, 5) == [1] * 25
    assert len(sampling.eval_ticks(1000, 1)) == 25


def test_eval_ticks_one_frame_is_the_centre():
    """`tsn test --frames 1` used to divide by zero: one tick, the val-phase centre."""
    assert sampling.eval_ticks(150, 1, 1) == [76]  # (150 - 1 + 1) // 2 + 1
    assert sampling.eval_ticks(150, 5, 1) == [74]  # stack 74..78 inside 1..150
    assert sampling.eval_ticks(150, 5, 1) == [int(sampling.val_offsets(150, 1, 5)[0]) + 1]
    assert sampling.eval_ticks(3, 5, 1) == [1]  # shorter than a stack: clamped reads from 1
    with pytest.raises(DataError, match="at least one"):
        sampling.eval_ticks(150, 1, 0)
    assert sampling.eval_stack_files(19, 20, 5) == [19, 20, 20, 20, 20]


def test_scale_pairs_rgb_and_flow_on_340x256():
    rgb = transforms.scale_pairs(256, 340, transforms.RELEASE_SCALE_RATIOS["rgb"])
    assert rgb == [(256, 256), (256, 224), (224, 256), (224, 224), (224, 192), (192, 224),
                   (192, 192), (192, 168), (168, 192), (168, 168)]
    flow = transforms.scale_pairs(256, 340, transforms.RELEASE_SCALE_RATIOS["flow"])
    assert flow == rgb[:7]
    paper_flow = transforms.scale_pairs(256, 340, transforms.PAPER_SCALE_RATIOS["flow"])
    assert paper_flow == rgb
    # snapping: 240 * .875 = 210 (no snap), 256*.875 = 224; 254*.875=222.25 -> 222 -> 224
    assert transforms.scale_pairs(254, 300, (0.875,)) == [(224, 224)]


def test_thirteen_fixed_crop_positions():
    offs = transforms.fix_crop_offsets(256, 340, 224, 224)
    # units (8, 29): docs/caffe_release.md#augmentation example, max offset (32, 116)
    assert offs[:5] == [(0, 0), (0, 116), (32, 0), (32, 116), (16, 58)]
    assert offs[5:] == [(0, 58), (32, 58), (16, 0), (16, 116), (8, 29), (8, 87), (24, 29),
                        (24, 87)]
    assert len(transforms.fix_crop_offsets(256, 340, 224, 224, more_fix_crop=False)) == 5


def test_draw_train_crop_covers_all_choices_uniformly():
    rng = np.random.default_rng(1)
    crops = [transforms.draw_train_crop(rng, 256, 340, transforms.RELEASE_SCALE_RATIOS["rgb"])
             for _ in range(4000)]
    pairs = {(c.crop_h, c.crop_w) for c in crops}
    assert len(pairs) == 10
    boxes = {(c.crop_h, c.crop_w, c.h_off, c.w_off) for c in crops}
    # 10 pairs x 13 positions, minus positions that coincide when a side has no slack (256)
    every = {(h, w, a, b) for h, w in pairs for a, b in transforms.fix_crop_offsets(256, 340, h, w)}
    assert boxes == every and len(every) == 114
    for c in crops:
        assert (c.h_off, c.w_off) in transforms.fix_crop_offsets(256, 340, c.crop_h, c.crop_w)
    frac = np.mean([c.mirror for c in crops])
    assert 0.45 < frac < 0.55


def test_apply_crop_box_resize_and_flow_flip():
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(256, 340, 4), dtype=np.uint8)
    # 224 crop: exact copy of the box
    c = transforms.Crop(32, 116, 224, 224, False)
    assert np.array_equal(transforms.apply_crop(img, c, False), img[32:256, 116:340])
    # non-224 crop: bilinear resize per channel (Caffe resizes channel by channel)
    c = transforms.Crop(8, 29, 192, 168, False)
    out = transforms.apply_crop(img, c, False)
    ref = np.stack([cv2.resize(np.ascontiguousarray(img[8:200, 29:197, k]), (224, 224))
                    for k in range(4)], axis=2)
    assert np.array_equal(out, ref)
    # mirrored flow: width reversed, x channels (even) -> 255 - v, y channels untouched
    c = transforms.Crop(0, 0, 224, 224, True)
    out = transforms.apply_crop(img, c, True)
    box = img[:224, :224, :][:, ::-1]
    assert np.array_equal(out[:, :, 1::2], box[:, :, 1::2])
    assert np.array_equal(out[:, :, 0::2], 255 - box[:, :, 0::2])
    # mirrored rgb: plain flip
    assert np.array_equal(transforms.apply_crop(img, c, False), box)


def test_oversample_order_and_mean():
    crops = transforms.oversample_crops(256, 340)
    assert [(c.h_off, c.w_off, c.mirror) for c in crops] == [
        (0, 0, False), (0, 116, False), (32, 0, False), (32, 116, False), (16, 58, False),
        (0, 0, True), (0, 116, True), (32, 0, True), (32, 116, True), (16, 58, True)]
    assert [(c.h_off, c.w_off) for c in transforms.oversample_crops(256, 340, num_crops=1)] == \
        [(16, 58)]
    x = np.full((2, 2, 6), 200, np.uint8)
    chw = transforms.to_chw_float(x, RGB_MEAN_BGR)
    assert chw.dtype == np.float32 and chw.shape == (6, 2, 2)
    assert list(chw[:, 0, 0]) == [96, 83, 77, 96, 83, 77]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 400), k=st.integers(1, 8), length=st.integers(1, 6),
       seed=st.integers(0, 2**32 - 1))
def test_every_read_file_exists(n, k, length, seed):
    """No offset, tick or stack index ever leaves 1..num_frames when the video is long enough
    for one snippet (the construction-time check) -- no IndexError mid-epoch."""
    if n < length:
        with pytest.raises(DataError):
            sampling.check_length("v", n, length)
        return
    rng = np.random.default_rng(seed)
    for offs in (sampling.train_offsets(n, k, length, rng), sampling.val_offsets(n, k, length)):
        assert len(offs) == k
        for o in offs:
            files = sampling.snippet_files(o, length)
            assert 1 <= files[0] and files[-1] <= n
    for tick in sampling.eval_ticks(n, length):
        assert all(1 <= f <= n for f in sampling.eval_stack_files(tick, n, length))
