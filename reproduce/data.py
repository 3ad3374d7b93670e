"""Datasets for the reproduction: where they live, how lists are made, how to get them.

The folders are tsn.data.layout's, one per dataset under DATA_ROOT (default `data/`):
`<root>/<data>/splits/` (or the archives' `ucfTrainTestlist/`, `testTrainMulti_7030_splits/`),
`frames/`, `warp_frames/` (warped-flow rows only) and `lists/`, where the
`<data>_<modality>_{train,val}_split_<k>.txt` lists are built from the splits and the frames on
first use. With no real dataset present, `lists` raises DataMissing with the steps to get one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from tsn.data.layout import HALVES, layout, split_format
from tsn.data.splits import NUM_CLASSES, read_split
from tsn.data.video_list import build_records, read_file_list, write_file_list

log = logging.getLogger(__name__)

DATASETS = ("synthetic", "ucf101", "hmdb51")


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
    where = layout(data, root)
    if data == "synthetic":
        return (f"run `python -m reproduce <table> --data synthetic` (it generates {where.base}) "
                "or `make demo`")
    url = {"ucf101": "https://www.crcv.ucf.edu/data/UCF101.php (UCF101.rar + the "
                     "'Train/Test Splits for Action Recognition' zip)",
           "hmdb51": "https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-"
                     "database/ (hmdb51_org.rar + test_train_splits.rar)"}[data]
    return (f"{data} not found under {where.base}. To get it: 1) `make data-{data}` (or download "
            f"the videos and the official splits from {url} and unpack the split files into "
            f"{where.splits}/); 2) extract frames and TV-L1 flow: `tsn extract --src "
            f"{where.videos} --out {where.frames('flow')} --flow tvl1`; warped-flow rows also "
            f"need `tsn extract --src {where.videos} --out {where.frames('warped_flow')} --flow "
            "tvl1 --warp`; 3) rerun this command, which builds the file lists. Or point "
            "DATA_ROOT= at a folder that already holds them. See docs/reproduce.md.")


def lists(data: str, split: int, modality: str, root: Path) -> Lists:
    """The (train, test) lists of `modality`; built from splits + frames on first use."""
    if data not in DATASETS:
        raise ValueError(f"unknown dataset {data!r}: choose one of {DATASETS}")
    where = layout(data, root)
    if not where.has_splits():
        raise DataMissing(how_to_get(data, Path(root)))
    frames = where.frames(modality)
    out = {half: where.list_path(modality, half, split) for half in HALVES}
    if not all(p.is_file() for p in out.values()):
        if not frames.is_dir():
            raise DataMissing(f"{frames}: no extracted frames for {modality}. "
                              + how_to_get(data, Path(root)))
        sp = read_split(split_format(data), where.splits, split)
        for half, entries in (("train", sp.train), ("val", sp.test)):
            write_file_list(build_records(frames, entries, modality), out[half])
            log.info("wrote %s", out[half])
    num_classes = NUM_CLASSES.get(data) or 1 + max(
        r.label for r in read_file_list(out["train"]) + read_file_list(out["val"]))
    return Lists(out["train"], out["val"], num_classes)
