"""The data layout: one place for <root>/<dataset>/{videos,splits,frames,warp_frames,lists}; the
shipped configs read their lists from it and work as shipped after the data steps."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tsn.build import build_dataset
from tsn.cli import main
from tsn.config import ConfigError, load_experiment
from tsn.data.layout import layout, list_name

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs").glob("*_*.toml"))  # ucf101_rgb, ..., hmdb51_flow (not smoke)


def test_layout_folders_and_list_names(tmp_path):
    where = layout("ucf101", tmp_path)
    assert where.videos == tmp_path / "ucf101" / "videos" and not where.has_splits()
    (tmp_path / "ucf101" / "UCF-101").mkdir(parents=True)  # as UCF101.rar unpacks
    (tmp_path / "ucf101" / "ucfTrainTestlist").mkdir()  # as the split zip unpacks
    assert where.videos.name == "UCF-101" and where.splits.name == "ucfTrainTestlist"
    assert where.frames("flow").name == "frames"
    assert where.frames("warped_flow").name == "warp_frames"
    assert where.list_path("rgb", "val", 2) == (
        tmp_path / "ucf101" / "lists" / "ucf101_rgb_val_split_2.txt")
    assert list_name("hmdb51", "flow", "train", 1) == "hmdb51_flow_train_split_1.txt"
    with pytest.raises(ValueError, match="half"):
        list_name("ucf101", "rgb", "test", 1)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_take_their_lists_from_the_layout(config):
    exp = load_experiment(config)
    where = layout(exp.data.dataset, "data")
    assert exp.data.train_list == str(where.list_path(exp.model.modality, "train", 1))
    assert exp.test.val_list == str(where.list_path(exp.model.modality, "val", 1))
    split2 = load_experiment(config, ["data.split=2"])  # one override moves both lists
    assert split2.data.train_list.endswith(f"_{exp.model.modality}_train_split_2.txt")
    assert split2.test.val_list.endswith(f"_{exp.model.modality}_val_split_2.txt")


def test_layout_val_list_needs_a_layout_root():
    with pytest.raises(ConfigError, match="layout_root"):
        load_experiment(None, ["test.val_list=layout"])


def _ucf101_like(root: Path) -> None:
    """What `make data-ucf101` + `tsn extract` leave: split files and frame folders (tiny)."""
    splits = root / "ucf101" / "ucfTrainTestlist"
    splits.mkdir(parents=True)
    classes = ("Archery", "Basketball")
    (splits / "classInd.txt").write_text("".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)))
    train, test = [], []
    for i, c in enumerate(classes, 1):
        for g in (1, 8):
            vid = f"v_{c}_g{g:02d}_c01"
            (train if g == 8 else test).append(f"{c}/{vid}.avi" + (f" {i}" if g == 8 else ""))
            folder = root / "ucf101" / "frames" / vid
            folder.mkdir(parents=True)
            for t in range(1, 9):
                rgb = np.full((256, 340, 3), 9 * t, np.uint8)
                cv2.imwrite(str(folder / f"img_{t:05d}.jpg"), rgb)
                for axis in "xy":
                    cv2.imwrite(str(folder / f"flow_{axis}_{t:05d}.jpg"),
                                np.full((256, 340), 128, np.uint8))
    (splits / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")
    (splits / "testlist01.txt").write_text("\r\n".join(test) + "\r\n")


@pytest.mark.parametrize("config", ["ucf101_rgb", "ucf101_flow"])
def test_shipped_config_works_after_the_data_steps(tmp_path, monkeypatch, config):
    """make data-ucf101, tsn extract, `tsn lists --dataset ucf101` (layout defaults), then the
    config as shipped, from the repository root's point of view (relative data/ paths)."""
    _ucf101_like(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert main(["lists", "--dataset", "ucf101", "--split", "1"]) == 0
    exp = load_experiment(REPO / "configs" / f"{config}.toml")
    train, _ = build_dataset(exp)
    val, _ = build_dataset(exp, "val")
    assert (len(train), len(val)) == (2, 2)
    x, label = train[0]
    assert x.shape[0] == 3 * (3 if config.endswith("rgb") else 10) and label == 0  # K=3 snippets
