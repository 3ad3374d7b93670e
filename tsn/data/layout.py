"""Where a dataset lives on disk: the one data layout every command and config uses.

    <root>/<dataset>/videos/       the videos (`UCF-101/`, as UCF101.rar unpacks, is accepted)
    <root>/<dataset>/splits/       official split files (`ucfTrainTestlist/`, as the UCF101 zip and
                                   `tsn synth` unpack, and `testTrainMulti_7030_splits/`, as
                                   HMDB51's rar unpacks, are accepted)
    <root>/<dataset>/frames/       `tsn extract` output: <video_id>/img_00001.jpg, flow_x_, flow_y_
    <root>/<dataset>/warp_frames/  `tsn extract --warp` output (warped flow)
    <root>/<dataset>/lists/        `<dataset>_<modality>_{train,val}_split_<k>.txt` (`tsn lists`;
                                   TSN's build_file_list naming, "val" = the official test half)

`<root>` is `data/` by default (DATA_ROOT= in make). A modality's frames folder is its
`frames_dir` in tsn/modality.py. `make data-ucf101` / `make data-hmdb51` unpack into this layout,
`tsn lists --dataset D` reads and writes it, and a config's `data.layout_root` points its
train/val lists at it (configs/*.toml).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tsn.modality import get_modality

DEFAULT_ROOT = "data"
# The first name is the layout's; the others are what the official archives unpack to.
VIDEO_DIRS = ("videos", "UCF-101")
SPLIT_DIRS = ("splits", "ucfTrainTestlist", "testTrainMulti_7030_splits")
LISTS_DIR = "lists"
HALVES = ("train", "val")  # list halves: "val" is the official test half of a split


def list_name(dataset: str, modality: str, half: str, split: int) -> str:
    """`<dataset>_<modality>_<half>_split_<k>.txt` ([TSN] build_file_list naming)."""
    if half not in HALVES:
        raise ValueError(f"list half {half!r}: use one of {HALVES}")
    return f"{dataset}_{modality}_{half}_split_{split}.txt"


def split_format(dataset: str) -> str:
    """The split-file format of a dataset folder (tsn.data.splits): the synthetic sets are
    UCF101-format ("synth"), the others are named after their format."""
    return "synth" if dataset in ("synth", "synthetic") else dataset


@dataclass(frozen=True)
class DatasetLayout:
    """The folders of one dataset under a data root."""

    root: Path
    dataset: str  # folder name under root, and the list-file prefix

    @property
    def base(self) -> Path:
        """`<root>/<dataset>`."""
        return Path(self.root) / self.dataset

    def _first(self, names: tuple[str, ...]) -> Path | None:
        return next((self.base / n for n in names if (self.base / n).is_dir()), None)

    @property
    def videos(self) -> Path:
        """The videos folder: the first of VIDEO_DIRS that exists, else `videos/`."""
        return self._first(VIDEO_DIRS) or self.base / VIDEO_DIRS[0]

    @property
    def splits(self) -> Path:
        """The split-file folder: the first of SPLIT_DIRS that exists, else `splits/`."""
        return self._first(SPLIT_DIRS) or self.base / SPLIT_DIRS[0]

    def has_splits(self) -> bool:
        """Whether a split-file folder exists."""
        return self._first(SPLIT_DIRS) is not None

    def frames(self, modality: str) -> Path:
        """Where `modality`'s frames are extracted (`frames/`; `warp_frames/` for warped flow)."""
        return self.base / get_modality(modality).frames_dir

    @property
    def lists(self) -> Path:
        """The file-list folder."""
        return self.base / LISTS_DIR

    def list_path(self, modality: str, half: str, split: int) -> Path:
        """One file list: `lists/<dataset>_<modality>_<half>_split_<k>.txt`."""
        return self.lists / list_name(self.dataset, modality, half, split)


def layout(dataset: str, root: str | os.PathLike = DEFAULT_ROOT) -> DatasetLayout:
    """The layout of `dataset` under `root` (default data/)."""
    return DatasetLayout(Path(root), dataset)
