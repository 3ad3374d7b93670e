"""`tsn synth` -> `tsn extract` -> `tsn lists` -> TSNDataset: the embedded demo dataset is in
UCF101's format, seeded, and its classes carry the cues they claim."""

from __future__ import annotations

import cv2
import numpy as np

from tsn.cli import main
from tsn.data.dataset import TSNDataset
from tsn.data.splits import read_ucf101_split
from tsn.data.synth import CLASSES, HEIGHT, WIDTH, SynthConfig, generate, render
from tsn.data.video_list import read_file_list
from tsn.flow.compute import compute_flow, make_flow


def test_synth_format_and_seed(tmp_path):
    a = generate(SynthConfig(str(tmp_path / "a"), seed=1, train_per_class=2, test_per_class=1,
                             num_frames=12))
    raw = (a / "trainlist01.txt").read_bytes()
    assert raw.count(b"\r\n") == 16 and b"\n" not in raw.replace(b"\r\n", b"")
    assert (a / "classInd.txt").read_bytes().startswith(b"1 CircleThenSquare\r\n")
    split = read_ucf101_split(a, 1)
    assert (len(split.train), len(split.test)) == (16, 8) and split.classes == CLASSES
    video = tmp_path / "a" / "UCF-101" / split.test[0].video
    cap = cv2.VideoCapture(str(video))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == WIDTH
    assert int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == HEIGHT
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    cap.release()
    # same seed -> same frames; other seed -> other frames
    f1 = render("MoveUp", np.random.default_rng([1, 2, 0]), 4)
    f2 = render("MoveUp", np.random.default_rng([1, 2, 0]), 4)
    f3 = render("MoveUp", np.random.default_rng([2, 2, 0]), 4)
    assert all(np.array_equal(x, y) for x, y in zip(f1, f2))
    assert not np.array_equal(f1[0], f3[0])


def median_flow(frames):
    g = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in frames]
    flow = compute_flow(make_flow("dis"), g[0], g[1])
    return flow


def test_synth_cues():
    rng = lambda k: np.random.default_rng([0, 0, k])  # noqa: E731
    # motion: the object moves down vs up (flow on the moving object has opposite signs), the
    # colour pair's sideways (mirror-free directions, docs: tsn/data/synth.py)
    for cls, axis, sign in (("MoveDown", 1, 1), ("MoveUp", 1, -1)):
        fr = render(cls, rng(1), 4)
        diff = np.abs(fr[1].astype(int) - fr[0].astype(int)).sum(2) > 30
        flow = median_flow(fr)[diff]
        assert np.sign(np.median(flow[:, axis])) == sign
        assert abs(np.median(flow[:, 0])) < 0.5  # no sideways motion
    fr = render("RedScene", rng(1), 4)
    diff = np.abs(fr[1].astype(int) - fr[0].astype(int)).sum(2) > 30
    flow = median_flow(fr)[diff]
    assert abs(np.median(flow[:, 0])) > 1.5 and abs(np.median(flow[:, 1])) < 0.5
    # pan: the background moves as a whole
    fr = render("PanObjectUp", rng(2), 4)
    assert abs(np.median(median_flow(fr)[..., 0])) > 1.5
    # appearance: red vs green tint
    red, green = render("RedScene", rng(3), 2)[0], render("GreenScene", rng(3), 2)[0]
    assert red[..., 2].mean() > red[..., 1].mean() and green[..., 1].mean() > green[..., 2].mean()
    # order: first half and second half show different shapes, reversed between classes
    a, b = render("CircleThenSquare", rng(4), 8), render("SquareThenCircle", rng(4), 8)
    assert not np.array_equal(a[0], a[-1]) and not np.array_equal(b[0], b[-1])


def test_synth_extract_lists_dataset_end_to_end(tmp_path):
    root = tmp_path / "synth"
    assert main(["synth", "--out", str(root), "--train-per-class", "1", "--test-per-class", "1",
                 "--frames", "10"]) == 0
    assert main(["extract", "--src", str(root / "UCF-101"), "--out", str(root / "frames"),
                 "--flow", "dis_fast", "--workers", "2"]) == 0
    # the data layout gives every folder: <root>/synth/{ucfTrainTestlist,frames,lists}
    assert main(["lists", "--dataset", "synth", "--root", str(tmp_path), "--split", "1"]) == 0
    recs = read_file_list(root / "lists" / "synth_flow_train_split_1.txt", num_classes=8)
    assert len(recs) == 8 and all(r.num_frames == 9 for r in recs)
    assert sorted(r.label for r in recs) == list(range(8))
    x, label = TSNDataset(recs, "flow", num_segments=1)[0]
    assert x.shape == (10, 224, 224) and label == recs[0].label
    # a split naming a video with no frames: one clear error naming it
    (root / "frames" / recs[0].path.split("/")[-1]).rename(root / "gone")
    assert main(["lists", "--dataset", "synth", "--splits-dir", str(root / "ucfTrainTestlist"),
                 "--frames", str(root / "frames"), "--out", str(root / "lists2"),
                 "--split", "1"]) == 1
