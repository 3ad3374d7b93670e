"""Both list layouts load: Caffe's flat `<root>/<video_id>` and mmaction2's two-level
`<class>/<video_id>` rawframes lists (relative paths joined to a root)."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from bench.data import naive_sample
from tsn.data.dataset import TSNDataset
from tsn.data.video_list import read_file_list


def write_frames(folder, n, seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(1, n + 1):
        img = cv2.GaussianBlur(rng.integers(0, 256, (256, 340, 3), dtype=np.uint8), (7, 7), 0)
        cv2.imwrite(str(folder / f"img_{i:05d}.jpg"), img)
        cv2.imwrite(str(folder / f"flow_x_{i:05d}.jpg"), img[:, :, 0])
        cv2.imwrite(str(folder / f"flow_y_{i:05d}.jpg"), img[:, :, 2])


def test_mmaction_rawframes_list_two_level(tmp_path):
    write_frames(tmp_path / "rawframes" / "Kick" / "v_Kick_g01_c01", 12)
    (tmp_path / "ucf101_train_split_1_rawframes.txt").write_text("Kick/v_Kick_g01_c01 12 3\n")
    recs = read_file_list(tmp_path / "ucf101_train_split_1_rawframes.txt",
                          root=tmp_path / "rawframes")
    x, label = TSNDataset(recs, "rgb")[0]
    assert x.shape == (9, 224, 224) and label == 3


def test_bench_naive_pipeline_does_the_same_work(tmp_path):
    """The benchmark's PIL baseline must produce the same sample (else the speedup is moot)."""
    write_frames(tmp_path / "v", 20)
    recs = read_file_list_from(tmp_path)
    for mod in ("rgb", "flow"):
        ds = TSNDataset(recs * 8, mod)
        for i in range(8):
            fast, naive = ds[i][0], naive_sample(ds, i)
            assert fast.shape == naive.shape
            # identical on 224 crops; PIL's bilinear differs from OpenCV's by rounding elsewhere
            assert (fast - naive).abs().mean() < 1.0
            assert torch.corrcoef(torch.stack([fast.flatten(), naive.flatten()]))[0, 1] > 0.99


def read_file_list_from(tmp_path):
    (tmp_path / "list.txt").write_text(f"{tmp_path / 'v'} 20 0\n")
    return read_file_list(tmp_path / "list.txt")
