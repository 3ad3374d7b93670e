"""`tsn extract` on the torch TV-L1 backend (tsn/flow/pipeline.py): the files equal tvl1_flow
called directly on the same decoded frames, any --batch gives the same files, warped flow runs
both of its flows through the backend, resume and the failure log work as on the OpenCV path,
2 mpirun ranks split the videos and give the same folders, and the CLI flags reach the config.

Frames are 64x48 (--width/--height) and videos 2-5 frames long: TV-L1 on the CPU is slow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tsn.cli import build_parser
from tsn.flow.batched import FrameSpec, write_jpeg
from tsn.flow.cli import build_config, resolve_device
from tsn.flow.compute import compute_flow, make_flow
from tsn.flow.encode import encode_flow
from tsn.flow.extract import (
    FAILURE_LOG,
    SEMANTICS,
    ExtractConfig,
    extract_all,
    extract_video,
    find_videos,
    shard_videos,
)
from tsn.flow.pipeline import run_pipeline
from tsn.flow.settings import SETTINGS_FILE, SettingsMismatch, read_settings, record_settings
from tsn.flow.warp import WarpedFlow

REPO = Path(__file__).resolve().parents[1]
W, H = 64, 48
LENGTHS = {"v_A_g01_c01": 5, "v_A_g02_c01": 4, "v_B_g01_c01": 2}  # frames: 4 + 3 + 1 pairs


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.random((h // 6, w // 6)).astype(np.float32), (w, h))
    return (30 + 200 * (img - img.min()) / np.ptp(img)).astype(np.uint8)


def _write_video(path: Path, n: int, seed: int, size=(96, 72), step=(2, 1)) -> None:
    big = _texture(200, 240, seed)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    for t in range(n):
        x, y = 40 - step[0] * t, 40 - step[1] * t
        gray = np.ascontiguousarray(big[y:y + size[1], x:x + size[0]])
        vw.write(cv2.merge([gray, np.roll(gray, 3, 1), np.roll(gray, 5, 0)]))
    vw.release()


def _make_videos(root: Path) -> Path:
    for i, (name, n) in enumerate(LENGTHS.items()):
        cls = name.split("_")[1]
        (root / cls).mkdir(parents=True, exist_ok=True)
        _write_video(root / cls / f"{name}.avi", n, seed=i)
    return root


def _decoded(video: Path, spec: FrameSpec) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(BGR frames, grey frames) decoded here the dense_flow way, independently of tsn.flow."""
    cap, bgr = cv2.VideoCapture(str(video)), []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if spec.width and not spec.warp:
            frame = cv2.resize(frame, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
        bgr.append(frame)
    cap.release()
    return bgr, [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in bgr]


def _jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return _make_videos(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def batch1(videos, tmp_path_factory) -> Path:
    """The torch backend at --batch 1 (the reference the other runs are compared with)."""
    out = tmp_path_factory.mktemp("b1") / "frames"
    cfg = ExtractConfig(width=W, height=H, batch=1)
    assert extract_all(find_videos(videos), out, cfg, progress=False)["done"] == 3
    return out


def test_torch_backend_files_equal_tvl1_flow_called_directly(videos, batch1):
    from tsn.flow.tvl1 import tvl1_flow

    spec = ExtractConfig(width=W, height=H).frame_spec
    want = {}
    for video in find_videos(videos):
        bgr, gray = _decoded(video, spec)
        flows = tvl1_flow(np.stack(gray[:-1]), np.stack(gray[1:]), semantics="gpu24")
        for k, flow in enumerate(flows, 1):
            d = video.stem
            want[f"{d}/img_{k:05d}.jpg"] = _jpeg(bgr[k])
            want[f"{d}/flow_x_{k:05d}.jpg"] = _jpeg(encode_flow(flow[..., 0]))
            want[f"{d}/flow_y_{k:05d}.jpg"] = _jpeg(encode_flow(flow[..., 1]))
    got = _tree(batch1)
    assert len(want) == 3 * sum(n - 1 for n in LENGTHS.values())
    assert got.keys() == want.keys()
    assert [k for k in want if got[k] != want[k]] == []
    settings = read_settings(batch1)["settings"]
    assert (settings["backend"], settings["semantics"]) == ("torch", "gpu24")
    assert (settings["width"], settings["height"], settings["params"]["iterations"]) == (W, H, 300)


def test_batches_across_videos_and_chunks_give_the_batch_1_files(videos, batch1, tmp_path):
    # batch 3 over 4 + 3 + 1 pairs: decoded in chunks of 3, 1 | 3 | 1 pairs, flowed as
    # (A1 1-3), (A1 4, A2 1-2), (A2 3, B 1): videos split across calls, calls holding two videos
    out = tmp_path / "frames"
    stats = extract_all(find_videos(videos), out,
                        ExtractConfig(width=W, height=H, batch=3, pipeline=True),
                        workers=1, progress=False)
    assert stats == {"done": 3, "skipped": 0, "failed": 0}
    assert _tree(out) == _tree(batch1)
    # one video in this process (extract_video: no decoder/writer processes)
    one = ExtractConfig(width=W, height=H, batch=3)
    assert extract_video(videos / "A" / "v_A_g02_c01.avi", tmp_path / "one", one) == 3
    assert _tree(tmp_path / "one") == _tree(batch1 / "v_A_g02_c01")


@pytest.mark.parametrize("pipeline", [True, False], ids=["pipeline", "pool"])
def test_resume_and_failure_log_on_the_torch_backend(videos, batch1, tmp_path, pipeline):
    src = tmp_path / "src"
    shutil.copytree(videos, src)
    (src / "A" / "v_A_g09_c01.avi").write_bytes(b"not a video")
    _write_video(src / "B" / "v_B_g09_c01.avi", 1, seed=9)  # one frame: no pair
    out = tmp_path / "frames"
    shutil.copytree(batch1 / "v_A_g02_c01", out / "v_A_g02_c01")  # finished earlier
    (out / "v_B_g01_c01.partial").mkdir()  # interrupted earlier
    (out / "v_B_g01_c01.partial" / "img_00001.jpg").write_bytes(b"junk")
    kept = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "v_A_g02_c01").iterdir()}
    cfg = ExtractConfig(width=W, height=H, batch=2, pipeline=pipeline)
    stats = extract_all(find_videos(src), out, cfg, workers=2, progress=False)
    assert stats == {"done": 2, "skipped": 1, "failed": 2}
    lines = (out / FAILURE_LOG).read_text().splitlines()
    assert len(lines) == 2
    assert any("v_A_g09_c01.avi" in x and "cannot open" in x for x in lines)
    assert any("v_B_g09_c01.avi" in x and "only one frame" in x for x in lines)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [FAILURE_LOG, SETTINGS_FILE, *LENGTHS])  # no folder or .partial for the failures
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in kept} == kept
    assert _tree(out) == _tree(batch1)
    again = extract_all(find_videos(src), out, cfg, progress=False)
    assert again == {"done": 0, "skipped": 3, "failed": 2}


def test_warped_flow_runs_both_flows_through_the_torch_backend(tmp_path):
    from tsn.flow.tvl1 import tvl1_flow

    class TorchTVL1:  # cv2-like flow object for WarpedFlow, one pair per call
        def calc(self, prev, cur, _flow):
            return tvl1_flow(prev, cur, semantics="cpu24")

    _write_video(tmp_path / "v_Pan_g01_c01.avi", 3, seed=5, size=(72, 56), step=(3, 0))
    cfg = ExtractConfig(warp=True, tvl1_semantics="cpu24", batch=2)
    assert extract_all([tmp_path / "v_Pan_g01_c01.avi"], tmp_path / "all", cfg,
                       progress=False)["done"] == 1
    _bgr, gray = _decoded(tmp_path / "v_Pan_g01_c01.avi", cfg.frame_spec)
    warper = WarpedFlow(TorchTVL1(), cfg.warp_options)
    want = {}
    for k in range(1, len(gray)):
        flow, _h = warper(gray[k - 1], gray[k])
        want[f"flow_x_{k:05d}.jpg"] = _jpeg(encode_flow(flow[..., 0]))
        want[f"flow_y_{k:05d}.jpg"] = _jpeg(encode_flow(flow[..., 1]))
    assert len(want) == 4
    assert _tree(tmp_path / "all" / "v_Pan_g01_c01") == want  # native 72x56, no img_ files


def test_opencv_backend_keeps_opencv5_tvl1(videos, tmp_path):
    video = videos / "B" / "v_B_g01_c01.avi"
    cfg = ExtractConfig(width=W, height=H, tvl1_backend="opencv")
    assert extract_video(video, tmp_path / "v", cfg) == 1
    _bgr, gray = _decoded(video, cfg.frame_spec)
    flow = compute_flow(make_flow("tvl1"), gray[0], gray[1])
    assert (tmp_path / "v" / "flow_x_00001.jpg").read_bytes() == _jpeg(encode_flow(flow[..., 0]))
    settings = record_settings(tmp_path, cfg)["settings"]
    assert settings["backend"] == "opencv" and settings["semantics"] is None
    assert settings["params"]["median_filtering"] == 5


def _fake_flow(prevs: np.ndarray, nexts: np.ndarray) -> np.ndarray:
    """A stand-in flow: breaks on white frames, else the mean difference as x flow."""
    if (prevs.mean(axis=(1, 2)) > 250).any():
        raise RuntimeError("white frame")
    flow = np.zeros((*prevs.shape, 2), np.float32)
    flow[..., 0] = (nexts.astype(np.float32) - prevs).mean(axis=(1, 2))[:, None, None]
    return flow


def test_a_batch_that_fails_fails_only_its_broken_video(videos, tmp_path):
    white = tmp_path / "v_W_g01_c01.avi"
    vw = cv2.VideoWriter(str(white), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (W, H))
    for _ in range(3):
        vw.write(np.full((H, W, 3), 255, np.uint8))
    vw.release()
    jobs = [(v, tmp_path / "out" / v.stem) for v in [white, *find_videos(videos)]]
    done, failed = {}, {}
    run_pipeline(jobs, FrameSpec(W, H), _fake_flow, batch=8, workers=1,
                 on_done=done.__setitem__, on_fail=failed.__setitem__)
    assert sorted(Path(v).stem for v in done) == sorted(LENGTHS)
    assert list(failed) == [str(white)] and "white frame" in failed[str(white)]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(LENGTHS)


def test_settings_record_is_kept_and_a_different_run_is_refused(tmp_path):
    first = record_settings(tmp_path, ExtractConfig(flow="dis"))
    text = (tmp_path / SETTINGS_FILE).read_text()
    assert json.loads(text) == first and first["settings"]["implementation"] == "cv2.DISOpticalFlow"
    assert {"commit", "versions", "hardware", "device", "batch"} <= set(first["provenance"])
    assert record_settings(tmp_path, ExtractConfig(flow="dis")) == first
    with pytest.raises(SettingsMismatch, match=r"flow 'dis' -> 'dis_fast'; params differs; "
                                               r"width 340 -> 170"):
        record_settings(tmp_path, ExtractConfig(flow="dis_fast", width=170))
    assert (tmp_path / SETTINGS_FILE).read_text() == text


def test_cli_flags_reach_the_config():
    parser = build_parser()
    args = parser.parse_args(["extract", "--src", "s", "--out", "o"])
    cfg = build_config(args)
    assert (cfg.flow, cfg.tvl1_backend, cfg.tvl1_semantics) == ("tvl1", "torch", "gpu24")
    assert (cfg.device, cfg.batch, cfg.uses_torch) == ("cpu", 16, True)
    assert cfg.compile and not cfg.uses_pipeline  # CPU: one-thread process pool, compiled
    args = parser.parse_args(["extract", "--src", "s", "--out", "o", "--tvl1-backend", "opencv",
                              "--tvl1-semantics", "cpu24", "--device", "cuda", "--batch", "4",
                              "--warp", "--warp-fixed", "--no-compile"])
    cfg = build_config(args, local_rank=3)
    assert (cfg.tvl1_backend, cfg.tvl1_semantics, cfg.device, cfg.batch) == (
        "opencv", "cpu24", "cuda:3", 4)
    assert cfg.warp and not cfg.warp_options.stale_reference and not cfg.uses_torch
    assert not cfg.compile
    assert ExtractConfig(device="cuda:0").uses_pipeline
    assert resolve_device("cuda:1", 3) == "cuda:1"
    with pytest.raises(ValueError, match="--device 'gpu'"):
        resolve_device("gpu", 0)
    with pytest.raises(SystemExit):
        parser.parse_args(["extract", "--src", "s", "--out", "o", "--tvl1-backend", "cuda"])
    with pytest.raises(ValueError, match="batch 0"):
        ExtractConfig(batch=0)


def test_semantics_names_match_tvl1():
    from tsn.flow.tvl1 import SEMANTICS as TVL1_SEMANTICS

    assert SEMANTICS == TVL1_SEMANTICS


def test_device_cuda_without_a_gpu_is_one_clear_line(capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: nothing to refuse")
    from tsn.cli import main

    assert main(["extract", "--src", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["tsn extract: --device cuda:0: no CUDA device visible "
                   "(torch.cuda.is_available() is False)"]


def test_shards_cover_every_video_once():
    videos = [Path(f"v{i}.avi") for i in (5, 1, 4, 2, 3)]
    shards = [shard_videos(videos, r, 2) for r in range(2)]
    assert shards == [[Path("v1.avi"), Path("v3.avi"), Path("v5.avi")],
                      [Path("v2.avi"), Path("v4.avi")]]
    with pytest.raises(ValueError):
        shard_videos(videos, 2, 2)


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMPI_", "PMIX_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_"))}
    return {**env, "PYTHONUNBUFFERED": "1"}


def test_mpirun_two_ranks_give_the_single_process_folders_and_resume(videos, batch1, tmp_path):
    if shutil.which("mpirun") is None:
        pytest.fail("mpirun not found: `make setup` installs openmpi-bin (Makefile APT_PACKAGES)")
    out = tmp_path / "frames"
    cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", sys.executable, "-m",
           "tsn.cli", "extract", "--src", str(videos), "--out", str(out), "--width", str(W),
           "--height", str(H), "--batch", "2", "--no-compile"]
    done = subprocess.run(cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0/2: extracted 2, skipped 0" in done.stdout  # v_A_g01, v_B_g01
    assert "rank 1/2: extracted 1, skipped 0" in done.stdout  # v_A_g02
    assert _tree(out) == _tree(batch1)
    assert read_settings(out)["provenance"]["ranks"] == 2
    snap = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    again = subprocess.run(cmd, cwd=REPO, env=_clean_env(), capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "rank 0/2: extracted 0, skipped 2" in again.stdout
    assert "rank 1/2: extracted 0, skipped 1" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")} == snap


def test_write_jpeg_is_imencode_quality_95(tmp_path):
    img = _texture(48, 64, 1)
    write_jpeg(tmp_path / "a.jpg", img)
    assert (tmp_path / "a.jpg").read_bytes() == _jpeg(img)


@pytest.mark.gpu
def test_cuda_extraction_gives_the_cpu_files_up_to_float_rounding(videos, batch1, tmp_path):
    """--device cuda: same folders as the CPU; flow levels equal up to device rounding."""
    import torch

    if not torch.cuda.is_available():
        pytest.fail("no CUDA device visible (the gpu marker needs one)")
    out = tmp_path / "frames"
    cfg = ExtractConfig(width=W, height=H, batch=4, device="cuda")
    assert extract_all(find_videos(videos), out, cfg, workers=2, progress=False)["done"] == 3
    got, want = _tree(out), _tree(batch1)
    assert got.keys() == want.keys()
    assert all(got[k] == want[k] for k in want if "/img_" in k)
    levels = [np.abs(cv2.imdecode(np.frombuffer(got[k], np.uint8), 0).astype(int)
                     - cv2.imdecode(np.frombuffer(want[k], np.uint8), 0)) for k in want
              if "/flow_" in k]
    assert np.mean([(d <= 1).mean() for d in levels]) >= 0.99
    assert read_settings(out)["provenance"]["device"] == "cuda"


def test_torchrun_environment_gives_this_rank_its_share(videos, tmp_path, monkeypatch, capsys):
    from tsn.cli import main

    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "frames"
    assert main(["extract", "--src", str(videos), "--out", str(out), "--flow", "none",
                 "--width", str(W), "--height", str(H)]) == 0
    assert "rank 1/2: extracted 1, skipped 0" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["v_A_g02_c01"]  # rank 0 writes the record
