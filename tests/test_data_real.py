"""Opt-in (`-m real_data`): the official split files as downloaded by `make data-ucf101` /
`make data-hmdb51` (DATA_DIR, default data/) parse to the published sizes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tsn.data.splits import HMDB51_CAFFE_CLASSES, read_hmdb51_split, read_ucf101_split

DATA = Path(os.environ.get("DATA_DIR", "data"))
UCF_SIZES = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}


def need(path: Path) -> Path:
    if not path.is_dir():
        pytest.fail(f"{path} missing: run `make data-ucf101` / `make data-hmdb51` first "
                    "(or set DATA_DIR)")
    return path


@pytest.mark.real_data
@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_ucf101_split_sizes(split):
    s = read_ucf101_split(need(DATA / "ucf101" / "ucfTrainTestlist"), split)
    assert (len(s.train), len(s.test)) == UCF_SIZES[split]
    assert len(s.classes) == 101 and s.classes[36] == "HandstandPushups"


@pytest.mark.real_data
@pytest.mark.parametrize("split", [1, 2, 3])
def test_real_hmdb51_split_sizes(split):
    s = read_hmdb51_split(need(DATA / "hmdb51" / "testTrainMulti_7030_splits"), split)
    assert (len(s.train), len(s.test)) == (3570, 1530)
    assert s.classes == HMDB51_CAFFE_CLASSES
