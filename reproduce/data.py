"""Datasets for the reproduction: where they live, how lists are made, how to get them.

Layout under DATA_ROOT (default `data/`), one folder per dataset:

    <root>/<data>/splits/        official split files (UCF101 classInd/trainlist0k/testlist0k,
                                 HMDB51 <class>_test_split<k>.txt); `ucfTrainTestlist/` (the
                                 name UCF101's zip and `tsn synth` use) is accepted too
    <root>/<data>/frames/        dense_flow output: <video_id>/img_00001.jpg, flow_x_, flow_y_
    <root>/<data>/warp_frames/   warped flow (flow_x_/flow_y_), only for warped-flow rows
    <root>/<data>/lists/         <data>_<modality>_{train,val}_split_<k>.txt, built here from the
                                 splits and the frames (TSN's build_file_list naming)

With no real dataset present, `lists` raises DataMissing with the steps to get one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DATASETS = ("synthetic", "ucf101", "hmdb51")
NUM_CLASSES = {"ucf101": 101, "hmdb51": 51}
# "splits" (ours), then the names the official archives unpack to (UCF101 zip, HMDB51 rar)
SPLIT_DIRS = ("splits", "ucfTrainTestlist", "testTrainMulti_7030_splits")


class DataMissing(RuntimeError):
    """The dataset (or one of its parts) is not where the reproduction expects it."""


@dataclass(frozen=True)
class Lists:
    """Train / test file lists of one dataset, split and modality."""

    train: Path
    test: Path
    num_classes: int


def how_to_get(data: str, root: Path) -> str:
    """The steps that put `data` where `lists` looks for it."""
    base = root / data
    if data == "synthetic":
        return (f"run `python -m reproduce <table> --data synthetic` (it generates {base}) "
                "or `make demo`")
    url = {"ucf101": "https://www.crcv.ucf.edu/data/UCF101.php (UCF101.rar + the "
                     "'Train/Test Splits for Action Recognition' zip)",
           "hmdb51": "https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-"
                     "database/ (hmdb51_org.rar + test_train_splits.rar)"}[data]
    return (f"{data} not found under {base}. To get it: 1) download the videos and the "
            f"official splits from {url}; 2) unpack the split files into {base}/splits/ "
            f"(or {base}/ucfTrainTestlist/); 3) extract frames and TV-L1 flow: `tsn extract "
            f"--src <videos> --out {base}/frames --flow tvl1`; warped-flow rows also need "
            f"`tsn extract --src <videos> --out {base}/warp_frames --flow tvl1 --warp`; "
            "4) rerun this command, which builds the file lists. Or point DATA_ROOT= at a "
            "folder that already holds them. See docs/reproduce.md.")


def _split_name(data: str) -> str:
    return "synth" if data == "synthetic" else data


def lists(data: str, split: int, modality: str, root: Path) -> Lists:
    """The (train, test) lists of `modality`; built from splits + frames on first use."""
    from tsn.data.splits import read_split
    from tsn.data.video_list import build_records, read_file_list, write_file_list

    if data not in DATASETS:
        raise ValueError(f"unknown dataset {data!r}: choose one of {DATASETS}")
    name = data
    base = Path(root) / name
    split_dir = next((base / d for d in SPLIT_DIRS if (base / d).is_dir()), None)
    if split_dir is None:
        raise DataMissing(how_to_get(name, Path(root)))
    frames = base / ("warp_frames" if modality == "warped_flow" else "frames")
    kind = "flow" if modality == "warped_flow" else modality
    out = {p: base / "lists" / f"{name}_{modality}_{p}_split_{split}.txt"
           for p in ("train", "val")}
    if not all(p.is_file() for p in out.values()):
        if not frames.is_dir():
            raise DataMissing(f"{frames}: no extracted frames for {modality}. "
                              + how_to_get(name, Path(root)))
        sp = read_split(_split_name(name), split_dir, split)
        for part, entries in (("train", sp.train), ("val", sp.test)):
            write_file_list(build_records(frames, entries, kind), out[part])
            log.info("wrote %s", out[part])
    num_classes = NUM_CLASSES.get(name) or 1 + max(
        r.label for r in read_file_list(out["train"]) + read_file_list(out["val"]))
    return Lists(out["train"], out["val"], num_classes)
