"""The worked examples of docs/architecture.md: a new modality and a new parameter-free consensus
are each one entry in one file (tsn/modality.py, tsn/models/consensus.py); every other part of
the code picks them up. Here the entry is added for the test only (monkeypatch)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from tsn.build import build_model
from tsn.config import load_experiment
from tsn.data.dataset import TSNDataset
from tsn.data.layout import layout
from tsn.data.video_list import VideoRecord, count_frames
from tsn.engine.optim import param_specs
from tsn.modality import FLOW_MEAN, MODALITIES, Modality
from tsn.models.consensus import CONSENSUS, SegmentConsensus
from tsn.train import train

# docs/architecture.md "Adding a modality": the one entry
FLOW3 = Modality("flow3", channels_per_frame=2, new_length=3, is_flow=True, mean=(FLOW_MEAN,),
                 dropout=0.7, first_conv_lr_boost=5.0, schedule="flow", frames_dir="frames")


class MedianConsensus(SegmentConsensus):
    """docs/architecture.md "Adding a consensus": per-class median over segments."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.median(dim=1).values


def _clips(tmp_path, *extra: str):
    return load_experiment(None, [
        "model.arch=tiny", "model.num_classes=3", "data.dataset=clips", "data.num_workers=0",
        "data.synthetic_size=12", "solver.preset=custom", "solver.base_lr=0.01",
        "solver.lr_policy=fixed", "solver.max_iter=2", "solver.batch_per_process=3",
        "solver.effective_batch=3", "checkpoint_every=2", f"run_root={tmp_path}", "device=cpu",
        *extra])


def test_a_new_modality_is_one_table_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(MODALITIES, "flow3", FLOW3)
    # config, released schedule (through the modality's schedule key) and model
    exp = load_experiment(None, ["model.modality=flow3", "model.arch=tiny"])
    assert exp.solver.base_lr == 0.005 and exp.solver.clip_gradients == 20.0  # flow's solver
    model, record = build_model(exp)
    assert model.snippet_channels == 6 and record["dropout"] == 0.7
    specs = {s.name: (s.lr_mult, s.decay_mult) for s in param_specs(model, "flow3")}
    assert specs["backbone.conv1.conv.weight"] == (5.0, 1.0)  # the first-conv boost
    assert specs["backbone.conv1.conv.bias"] == (10.0, 0.0)
    # data layout and frame files: flow_x_/flow_y_ under frames/, 3 stacked pairs per snippet
    assert layout("ucf101", tmp_path).frames("flow3") == tmp_path / "ucf101" / "frames"
    folder = tmp_path / "v"
    folder.mkdir()
    grey = np.full((256, 340), 100, np.uint8)
    for t in range(1, 10):
        for axis in "xy":
            cv2.imwrite(str(folder / f"flow_{axis}_{t:05d}.jpg"), grey)
    assert count_frames(folder, "flow3") == 9
    x, _ = TSNDataset([VideoRecord(str(folder), 9, 0)], "flow3", num_segments=3, train=False)[0]
    assert x.shape == (3 * 6, 224, 224) and float(x[0, 0, 0]) == 100 - FLOW_MEAN
    # and it trains
    result = train(_clips(tmp_path, "model.modality=flow3", "data.synthetic_shape=[2,8,8]"))
    assert result.iterations == 2 and np.isfinite(result.final_loss)


def test_a_new_parameter_free_consensus_is_one_table_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(CONSENSUS, "median", MedianConsensus)
    exp = _clips(tmp_path, "model.consensus=median", "model.num_segments=3")
    model, record = build_model(exp)
    assert record["consensus"] == "median" and isinstance(model.consensus, MedianConsensus)
    scores = torch.tensor([[[1.0, 5.0], [3.0, 0.0], [2.0, 9.0]]])  # (N=1, K=3, C=2)
    assert model.consensus(scores).tolist() == [[2.0, 5.0]]
    result = train(exp)  # no optimizer policy needed: it has no parameters
    assert result.iterations == 2 and np.isfinite(result.final_loss)


def test_unknown_names_still_list_the_table(monkeypatch):
    with pytest.raises(ValueError, match="unknown consensus 'median'"):
        build_model(load_experiment(None, ["model.arch=tiny", "model.consensus=median"]))
