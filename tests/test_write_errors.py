"""ENOSPC/EROFS injected in-process: the fallback of the tmpfs fault suite, run everywhere.

tests/test_faults_disk.py fills a real tmpfs (needs root, opt-in). These default-suite tests
make the lowest-level write of each writer raise OSError(ENOSPC) or OSError(EROFS) instead, so
the same promise is checked on any machine: the error propagates (or is logged, for
extraction), the previous file is byte-identical and no temporary file is left.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tsn.engine import checkpoint
from tsn.scores import Protocol, VideoScores, load_scores, save_scores

ERRORS = [errno.ENOSPC, errno.EROFS]


def _boom(code: int):
    def fail(*_args, **_kwargs):
        raise OSError(code, os.strerror(code))
    return fail


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("code", ERRORS)
def test_checkpoint_save_keeps_the_previous_one(tmp_path, monkeypatch, code):
    folder = tmp_path / "checkpoints"
    first = checkpoint.save(folder, 2, {"model": {"w": torch.ones(3)}})
    before = first.read_bytes()
    monkeypatch.setattr(os, "fsync", _boom(code))  # the data never reaches the disk
    with pytest.raises(OSError) as err:
        checkpoint.save(folder, 4, {"model": {"w": torch.zeros(3)}})
    assert err.value.errno == code
    assert _only(folder) == ["iter_0000002.pt"] and first.read_bytes() == before
    assert checkpoint.latest(folder) == first


@pytest.mark.parametrize("code", ERRORS)
def test_score_file_keeps_the_previous_one(tmp_path, monkeypatch, code):
    vs = VideoScores(("a", "b"), np.array([0, 1]), np.eye(2), Protocol())
    path = save_scores(tmp_path / "s.npz", vs)
    before, side = path.read_bytes(), (tmp_path / "s.per_class.csv").read_bytes()
    real = np.savez

    def half_then_fail(file, **arrays):  # a partial file exists when the error comes
        real(file, **arrays)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(np, "savez", half_then_fail)
    with pytest.raises(OSError):
        save_scores(path, VideoScores(("x",), np.array([0]), np.ones((1, 2)), Protocol()))
    assert _only(tmp_path) == ["s.npz", "s.per_class.csv"] and path.read_bytes() == before
    assert (tmp_path / "s.per_class.csv").read_bytes() == side  # side files follow the file
    assert load_scores(path).video_ids == ("a", "b")


@pytest.mark.parametrize("code", ERRORS)
def test_weights_conversion_output_keeps_the_previous_one(tmp_path, monkeypatch, code):
    from prototxt_port.convert import save_weights

    save_weights({"w": torch.ones(2)}, tmp_path / "w.pt")
    before = (tmp_path / "w.pt").read_bytes()
    monkeypatch.setattr(os, "fsync", _boom(code))
    with pytest.raises(OSError):
        save_weights({"w": torch.zeros(2)}, tmp_path / "w.pt")
    assert _only(tmp_path) == ["w.pt"] and (tmp_path / "w.pt").read_bytes() == before


@pytest.mark.parametrize("code", ERRORS)
def test_extraction_logs_the_errno_and_leaves_no_partial(tmp_path, monkeypatch, code):
    import cv2

    from tsn.flow import extract

    vw = cv2.VideoWriter(str(tmp_path / "v_A_g01_c01.avi"), cv2.VideoWriter_fourcc(*"MJPG"),
                         25.0, (64, 48))
    for i in range(4):
        vw.write(np.full((48, 64, 3), 40 * i, np.uint8))
    vw.release()
    calls = {"n": 0}
    real = Path.write_bytes

    def fail_on_fifth(self, data):  # mid-video: some frames already written
        calls["n"] += 1
        if calls["n"] == 5:
            raise OSError(code, os.strerror(code))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", fail_on_fifth)
    with pytest.raises(OSError) as err:
        extract.extract_video(tmp_path / "v_A_g01_c01.avi", tmp_path / "out" / "v_A_g01_c01",
                              extract.ExtractConfig(flow="dis", width=0))
    assert err.value.errno == code and calls["n"] == 5
    assert _only(tmp_path / "out") == []  # neither the video folder nor its .partial
