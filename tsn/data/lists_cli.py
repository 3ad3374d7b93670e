"""`tsn lists`: TSN file lists (`path num_frames label`) from split files + extracted frames."""

from __future__ import annotations

import argparse

from tsn.data.errors import DataError
from tsn.data.lists import build_lists


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tsn lists`."""
    parser.add_argument("--dataset", required=True, choices=("ucf101", "hmdb51", "synth"))
    parser.add_argument("--splits-dir", required=True,
                        help="ucfTrainTestlist/ or testTrainMulti_7030_splits/")
    parser.add_argument("--frames", required=True, help="frame root written by `tsn extract`")
    parser.add_argument("--out", required=True, help="folder for the list files")
    parser.add_argument("--split", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--modality", nargs="+", default=["rgb", "flow"])
    parser.add_argument("--hmdb-class-order", default="caffe", choices=("caffe", "mmaction"))


def run(args: argparse.Namespace) -> int:
    """Write the lists; a bad split file or missing video is one error message, status 1."""
    try:
        paths = build_lists(args.dataset, args.splits_dir, args.frames, args.out,
                            args.split, args.modality, args.hmdb_class_order)
    except DataError as err:
        print(f"error: {err}")
        return 1
    for p in paths:
        print(p)
    return 0
