"""Build the TSN file lists of a dataset from its official split files and extracted frames.

Writes, per split k, `<dataset>_<modality>_{train,val}_split_<k>.txt` ("val" = the official test
half; names from tsn.data.layout), as [TSN] scripts/build_file_list.sh does
(docs/caffe_release.md#file-lists), but in split-file order (the release shuffles unseeded; the
training loader shuffles anyway).

All or nothing (docs/reliability.md): every split file is read and every list's records are
built (frames counted) before the first list is written, and a write that fails part-way puts
back what the run had replaced (earlier lists are restored, new ones removed).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tsn.atomic import atomic_write_bytes, check_writable
from tsn.data.errors import DataError
from tsn.data.layout import list_name, split_format
from tsn.data.splits import read_split
from tsn.data.video_list import build_records, write_file_list

LIST_MODALITIES = ("rgb", "flow")  # the release's lists


def build_lists(dataset: str, split_dir: str | os.PathLike,
                frame_root: str | os.PathLike | Mapping[str, str | os.PathLike],
                out_dir: str | os.PathLike, splits=(1, 2, 3), modalities=LIST_MODALITIES,
                class_order: str = "caffe") -> list[Path]:
    """Write the file lists; a split video without frames raises one DataError naming it.

    `dataset` names the lists and, through tsn.data.layout.split_format, the split format;
    `frame_root` is one folder for every modality or {modality: folder} (warped flow has its own).
    """
    planned = []  # (path, records): everything is checked before anything is written
    for k in splits:
        split = read_split(split_format(dataset), split_dir, k, class_order)
        for mod in modalities:
            root = frame_root[mod] if isinstance(frame_root, Mapping) else frame_root
            for half, entries in (("train", split.train), ("val", split.test)):
                planned.append((Path(out_dir) / list_name(dataset, mod, half, k),
                                build_records(root, entries, mod)))
    if not planned:
        raise DataError(f"{split_dir}: no list to write (no split or modality asked for)")
    check_writable(out_dir)
    previous = {p: p.read_bytes() if p.is_file() else None for p, _ in planned}
    written = []
    try:
        for path, recs in planned:
            write_file_list(recs, path)
            written.append(path)
    except BaseException:
        for path in written:  # undo this run: the lists it replaced come back
            old = previous[path]
            try:
                atomic_write_bytes(path, old) if old is not None else path.unlink()
            except OSError:
                pass  # the write that failed says why; a list that cannot be restored stays
        raise
    return written
