"""`tsn train` end to end on the real pieces: TSNDataset frame folders + BN-Inception TSN.

Tiny on purpose (4 videos, 1 iteration of 2 x batch 1, CPU): it shows the engine drives the real
data and model (partial BN, flow conv1 multipliers, init record), not that BN-Inception learns.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from tsn.cli import main as tsn_main
from tsn.engine import checkpoint


def _frames(folder, n: int, value: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(value)
    for i in range(1, n + 1):
        img = rng.integers(0, 255, (256, 340, 3), dtype=np.uint8)
        cv2.imwrite(str(folder / f"img_{i:05d}.jpg"), img)
        cv2.imwrite(str(folder / f"flow_x_{i:05d}.jpg"), img[:, :, 0])
        cv2.imwrite(str(folder / f"flow_y_{i:05d}.jpg"), img[:, :, 1])


# flow runs by default (conv1 5/10, 10-channel cross-stack); rgb is the same path: opt-in
@pytest.mark.parametrize("modality", [pytest.param("rgb", marks=pytest.mark.slow), "flow"])
def test_train_bn_inception_on_frame_folders(tmp_path, modality):
    for v in range(4):
        _frames(tmp_path / "frames" / f"v{v}", 8, v)
    lst = tmp_path / "train.txt"
    lst.write_text("".join(f"v{v} 8 {v % 2}\n" for v in range(4)))
    cfg = tmp_path / "exp.json"
    cfg.write_text(json.dumps({
        "name": "real", "threads": 2, "device": "cpu", "checkpoint_every": 1,
        "model": {"modality": modality, "num_classes": 2, "num_segments": 1, "init": "scratch"},
        "data": {"train_list": str(lst), "root": str(tmp_path / "frames"), "num_workers": 0},
        "solver": {"max_iter": 1, "batch_per_process": 1, "effective_batch": 2},
        # Caffe TEST phase on TSNDataset(train=False): before iteration 0 and after the last
        "test": {"val_list": str(lst), "interval": 1, "batch_size": 4},
    }))
    run = tmp_path / "run"
    assert tsn_main(["train", str(cfg), "--run-dir", str(run)]) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["init"] == "scratch" and record["frozen_bn_layers"] == 68
    assert record["iter_size"] == 2
    # provenance (guide: results carry commit, versions, hardware and seed)
    assert record["commit"] and record["seed"] == 0 and record["hardware"]
    assert record["versions"]["numpy"] and "jpeg_decoder" in record
    state = checkpoint.load(checkpoint.latest(run / "checkpoints"))
    assert state["iteration"] == 1
    history = state["optimizer"]["history"]
    # partial BN: the frozen BNs never get momentum, conv1's BN does
    assert torch.count_nonzero(history["backbone.conv2.bn.weight"]) == 0
    assert torch.count_nonzero(history["backbone.conv1.bn.weight"]) > 0
    rows = (run / "metrics.csv").read_text().splitlines()
    val = (run / "val_metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in val[1:]] == ["0", "1"] and val[1].split(",")[4] == "4"
    assert len(rows) == 2 and rows[1].split(",")[2] == ("0.001" if modality == "rgb" else "0.005")
