"""Build the TSN file lists of a dataset from its official split files and extracted frames.

Writes, per split k, `<ds>_{rgb,flow}_{train,val}_split_<k>.txt` ("val" = the official test half),
as [TSN] scripts/build_file_list.sh does (docs/caffe_release.md#file-lists), but in split-file order
(the release shuffles unseeded; the training loader shuffles anyway).
"""

from __future__ import annotations

import os
from pathlib import Path

from tsn.data.splits import read_split
from tsn.data.video_list import build_records, write_file_list

LIST_MODALITIES = ("rgb", "flow")


def build_lists(dataset: str, split_dir: str | os.PathLike, frame_root: str | os.PathLike,
                out_dir: str | os.PathLike, splits=(1, 2, 3), modalities=LIST_MODALITIES,
                class_order: str = "caffe") -> list[Path]:
    """Write the file lists; a split video without frames raises one DataError naming it."""
    name = "ucf101" if dataset == "synth" else dataset
    written = []
    for k in splits:
        split = read_split(dataset, split_dir, k, class_order)
        for mod in modalities:
            for half, entries in (("train", split.train), ("val", split.test)):
                recs = build_records(frame_root, entries, mod)
                path = Path(out_dir) / f"{name}_{mod}_{half}_split_{k}.txt"
                written.append(write_file_list(recs, path))
    return written
