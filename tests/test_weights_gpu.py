"""Reference-model evaluation on CUDA equals CPU (opt-in: -m gpu). Kept apart from
test_weights_reference.py so it imports nothing that needs the protobuf runtime."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tsn.models.bn_inception import BNInception
from tsn.scores import Protocol


def write_dataset(root, labels):
    """<root>/ucf101/frames/<video>/img_0000k.jpg (340x256, varying) + the RGB test list."""
    lines = []
    rng = np.random.default_rng(0)
    for i, label in enumerate(labels):
        folder = root / "ucf101" / "frames" / f"v_{i}"
        folder.mkdir(parents=True)
        for t in range(1, 5):
            cv2.imwrite(str(folder / f"img_{t:05d}.jpg"),
                        rng.integers(0, 256, (256, 340, 3), dtype=np.uint8))
        lines.append(f"{folder} 4 {label}")
    lists = root / "ucf101" / "lists"
    lists.mkdir(parents=True)
    (lists / "ucf101_rgb_val_split_1.txt").write_text("\n".join(lines) + "\n")


@pytest.mark.gpu
def test_reference_model_scores_on_cuda_match_cpu(tmp_path):
    from tsn.build import build_test_dataset
    from tsn.build import reference_model as build_model
    from tsn.data.video_list import read_file_list
    from tsn.evaluate import evaluate

    torch.manual_seed(1)
    state = BNInception(3, 101).state_dict()
    weights = {"format": "tsn-weights/1", "layout": "bn_inception", "state_dict": state,
               "meta": {}}
    write_dataset(tmp_path, [1, 2])
    records = read_file_list(tmp_path / "ucf101" / "lists" / "ucf101_rgb_val_split_1.txt")
    protocol = Protocol(num_frames=3, num_crops=10)
    dataset = build_test_dataset(records, "rgb", protocol, None)
    scores = {}
    for name in ("cpu", "cuda"):
        device = torch.device(name)
        model = build_model(weights, "rgb", device)
        scores[name] = evaluate(model, dataset, ["a", "b"], device, protocol,
                                progress=False).scores
    # cuDNN may use TF32 (PyTorch's default): compare relative to the logits' scale
    scale = float(np.abs(scores["cpu"]).max())
    assert scale > 0
    np.testing.assert_allclose(scores["cuda"], scores["cpu"], rtol=0, atol=2e-2 * scale)
