"""`tsn lists`: TSN file lists (`path num_frames label`) from split files + extracted frames.

By default every folder comes from the data layout (tsn.data.layout): the splits, each
modality's frames and the lists folder of `<root>/<dataset>/`; `--splits-dir`, `--frames` and
`--out` override them.
"""

from __future__ import annotations

import argparse
import sys

from tsn.data.errors import DataError
from tsn.data.layout import DEFAULT_ROOT, layout
from tsn.data.lists import LIST_MODALITIES, build_lists


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `tsn lists`."""
    parser.add_argument("--dataset", required=True, choices=("ucf101", "hmdb51", "synth"),
                        help="names the lists and the folder <root>/<dataset>/")
    parser.add_argument("--root", default=DEFAULT_ROOT,
                        help="data root of the layout <root>/<dataset>/{splits,frames,lists}")
    parser.add_argument("--splits-dir", default=None,
                        help="default: <root>/<dataset>/splits (or ucfTrainTestlist/, "
                        "testTrainMulti_7030_splits/)")
    parser.add_argument("--frames", default=None, help="frame root written by `tsn extract` "
                        "(default: <root>/<dataset>/frames, warp_frames for warped_flow)")
    parser.add_argument("--out", default=None,
                        help="folder for the list files (default: <root>/<dataset>/lists)")
    parser.add_argument("--split", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--modality", nargs="+", default=list(LIST_MODALITIES))
    parser.add_argument("--hmdb-class-order", default="caffe", choices=("caffe", "mmaction"))


def run(args: argparse.Namespace) -> int:
    """Write the lists, all or none: a bad split file or missing video is one error message
    and status 1, an output folder that cannot be written status 2; no list is written then."""
    where = layout(args.dataset, args.root)
    try:
        frames = args.frames or {m: where.frames(m) for m in args.modality}
        paths = build_lists(args.dataset, args.splits_dir or where.splits, frames,
                            args.out or where.lists, args.split, args.modality,
                            args.hmdb_class_order)
    except (DataError, ValueError) as err:
        print(f"tsn lists: error: {err}; no list written", file=sys.stderr)
        return 1
    except OSError as err:  # read-only or full output folder (tsn.errors.OutputError)
        print(f"tsn lists: error: {err}; no list written", file=sys.stderr)
        return 2
    for p in paths:
        print(p)
    return 0
