"""Bad input in the default suite: each case ends in the project's own clear error, naming the
file or video, never a bare traceback or a silently wrong number.

Corrupt JPEG frames and garbage/truncated videos, split files in other encodings or with
missing/duplicate lines, score files that do not line up, configs with unknown keys or wrong
types, and config text that looks like code (never executed). The prototxt/caffemodel readers
are fuzzed in tests/test_port_fuzz.py; here hypothesis fuzzes the config, split-file and
score-file readers (bytes in -> ConfigError / DataError / ScoreFileError or a valid result).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsn.cli import main as tsn_main
from tsn.config import ConfigError, load_experiment
from tsn.data.dataset import TSNDataset, TSNTestDataset
from tsn.data.errors import DataError
from tsn.data.splits import read_hmdb51_split, read_ucf101_split
from tsn.data.video_list import VideoRecord
from tsn.flow.extract import FAILURE_LOG, ExtractConfig, extract_all
from tsn.scores import Protocol, ScoreFileError, VideoScores, load_scores, save_scores

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


# ---------------------------------------------------------------- frames and videos

def _frames(folder: Path, n: int = 5) -> VideoRecord:
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        cv2.imwrite(str(folder / f"img_{i:05d}.jpg"), np.full((64, 80, 3), 90, np.uint8))
    return VideoRecord(str(folder), n, 0)


@pytest.mark.parametrize("damage", ["empty", "garbage", "header_only", "text"])
def test_corrupt_jpeg_frame_is_one_error_naming_the_video(tmp_path, damage):
    rec = _frames(tmp_path / "v_Bad_g01_c01")
    frame = Path(rec.path) / "img_00003.jpg"
    good = frame.read_bytes()
    garbage = np.random.default_rng(3).bytes(900)  # seeded: the same bytes on every run
    frame.write_bytes({"empty": b"", "garbage": garbage, "header_only": good[:20],
                       "text": b"<html>404 not found</html>"}[damage])
    for ds in (TSNTestDataset([rec], "rgb", num_frames=5, crops=1),
               TSNDataset([rec], "rgb", num_segments=5, train=False)):
        with pytest.raises(DataError, match=r"v_Bad_g01_c01/img_00003\.jpg"):
            ds[0]


def _video(path: Path, frames: int = 5) -> None:
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 72))
    rng = np.random.default_rng(1)
    for _ in range(frames):
        vw.write(rng.integers(0, 255, (72, 96, 3), np.uint8))
    vw.release()


def test_garbage_and_truncated_videos_are_logged_and_extraction_goes_on(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _video(src / "v_Good_g01_c01.avi")
    _video(src / "v_Trunc_g01_c01.avi", 8)
    data = (src / "v_Trunc_g01_c01.avi").read_bytes()
    (src / "v_Trunc_g01_c01.avi").write_bytes(data[:300])  # header, no frames
    (src / "v_Empty_g01_c01.avi").write_bytes(b"")
    (src / "v_Noise_g01_c01.avi").write_bytes(np.random.default_rng(4).bytes(5000))
    _video(src / "v_One_g01_c01.avi", 1)  # one frame: no flow pair
    videos = sorted(src.iterdir())
    out = tmp_path / "out"
    stats = extract_all(videos, out, ExtractConfig(flow="dis", width=0), workers=1,
                        progress=False)
    assert stats == {"done": 1, "skipped": 0, "failed": 4}
    failures = (out / FAILURE_LOG).read_text()
    for bad in ("v_Trunc", "v_Empty", "v_Noise", "v_One"):
        assert f"{bad}_g01_c01.avi" in failures
        assert not (out / f"{bad}_g01_c01").exists()
    assert len(failures.splitlines()) == 4
    assert sorted(p.name for p in out.iterdir()) == [FAILURE_LOG, "extract_settings.json",
                                                   "v_Good_g01_c01"]


# ---------------------------------------------------------------- split files

def _ucf(tmp: Path, encoding: str = "utf-8", train: str | None = None, bom: bool = False,
         test: str | None = None) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    files = {
        "classInd.txt": "1 Alpha\r\n2 Beta\r\n",
        "trainlist01.txt": train if train is not None else
        "Alpha/v_Alpha_g01_c01.avi 1\r\nBeta/v_Beta_g01_c01.avi 2\r\n",
        "testlist01.txt": test if test is not None else
        "Alpha/v_Alpha_g02_c01.avi\r\nBeta/v_Beta_g02_c01.avi\r\n",
    }
    for name, text in files.items():
        data = text.encode(encoding)
        if bom and encoding == "utf-8":
            data = b"\xef\xbb\xbf" + data
        (tmp / name).write_bytes(data)
    return tmp


@pytest.mark.parametrize("encoding,bom", [("utf-8", True), ("utf-16", False),
                                          ("latin-1", False)])
def test_split_files_in_other_encodings_read_the_same(tmp_path, encoding, bom):
    want = read_ucf101_split(_ucf(tmp_path / "ref"), 1)
    got = read_ucf101_split(_ucf(tmp_path / "x", encoding, bom=bom), 1)
    assert got == want


def test_split_file_with_undecodable_bytes_is_one_clear_error(tmp_path):
    d = _ucf(tmp_path)
    (d / "testlist01.txt").write_bytes(b"Alpha/v_\xff\xfe\x00Alpha_g02.avi\r\n\x00\x81\x8d")
    with pytest.raises(DataError, match="testlist01.txt"):
        read_ucf101_split(d, 1)


def test_split_with_duplicate_video_is_refused(tmp_path):
    dup = ("Alpha/v_Alpha_g01_c01.avi 1\r\nBeta/v_Beta_g01_c01.avi 2\r\n"
           "Alpha/v_Alpha_g01_c01.avi 1\r\n")
    with pytest.raises(DataError, match=r"trainlist01.txt.*v_Alpha_g01_c01.*more than once"):
        read_ucf101_split(_ucf(tmp_path / "a", train=dup), 1)
    both = "Alpha/v_Alpha_g01_c01.avi\r\n"  # a training video also in the test list
    with pytest.raises(DataError, match=r"v_Alpha_g01_c01.*both"):
        read_ucf101_split(_ucf(tmp_path / "b", test=both), 1)


def test_split_with_missing_lines_is_refused(tmp_path):
    d = _ucf(tmp_path / "a", test="\r\n  \r\n")
    with pytest.raises(DataError, match="testlist01.txt.*no videos"):
        read_ucf101_split(d, 1)
    d = _ucf(tmp_path / "b")
    (d / "classInd.txt").write_text("1 Alpha\n3 Gamma\n")  # line 2 missing
    with pytest.raises(DataError, match="classInd.txt: class indices must be 1..N"):
        read_ucf101_split(d, 1)
    d = _ucf(tmp_path / "c", train="Alpha/v_Alpha_g01_c01.avi 1\r\nv_Beta_g01_c01.avi\r\n")
    with pytest.raises(DataError, match="trainlist01.txt.*v_Beta_g01_c01.avi"):
        read_ucf101_split(d, 1)


def test_hmdb_split_with_duplicates_and_other_encodings(tmp_path):
    d = tmp_path / "h"
    d.mkdir()
    (d / "brush_hair_test_split1.txt").write_bytes("a.avi 1 \nb.avi 2 \n".encode("utf-16"))
    (d / "cartwheel_test_split1.txt").write_text("c.avi 1 \nd.avi 2 \n")
    split = read_hmdb51_split(d, 1)
    assert [e.video_id for e in split.train] == ["a", "c"]
    (d / "cartwheel_test_split1.txt").write_text("c.avi 1 \nc.avi 1 \nd.avi 2 \n")
    with pytest.raises(DataError, match="cartwheel_test_split1.txt.*c.avi.*more than once"):
        read_hmdb51_split(d, 1)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_split_reader_raises_only_data_error(tmp_path, blob):
    d = _ucf(tmp_path / "fz")
    (d / "trainlist01.txt").write_bytes(blob)
    try:
        read_ucf101_split(d, 1)
    except DataError:
        pass


# ---------------------------------------------------------------- score files

def _vs(ids, labels, classes=3, seed=0) -> VideoScores:
    rng = np.random.default_rng(seed)
    return VideoScores(tuple(ids), np.array(labels), rng.normal(size=(len(ids), classes)),
                       Protocol())


@pytest.mark.parametrize("other,why", [
    (_vs(["a", "b", "x"], [0, 1, 2]), "'c' vs 'x'"),
    (_vs(["a", "c", "b"], [0, 2, 1]), "'b' vs 'c'"),
    (_vs(["a", "b"], [0, 1]), "3 videos vs 2"),
    (_vs(["a", "b", "c"], [0, 1, 1]), "label"),
    (_vs(["a", "b", "c"], [0, 1, 2], classes=4), "3 vs 4 classes"),
])
def test_fuse_refuses_score_files_that_do_not_line_up(tmp_path, capsys, other, why):
    a = save_scores(tmp_path / "rgb.npz", _vs(["a", "b", "c"], [0, 1, 2]))
    b = save_scores(tmp_path / "flow.npz", other)
    assert tsn_main(["fuse", str(a), str(b), "--out", str(tmp_path / "f.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("tsn fuse: error:")
    assert str(a) in err and str(b) in err and why in err
    assert not (tmp_path / "f.npz").exists()


def test_score_file_with_nan_or_bad_labels_is_refused(tmp_path, capsys):
    good = save_scores(tmp_path / "good.npz", _vs(["a", "b"], [0, 1]))
    bad = _vs(["a", "b"], [0, 1])
    bad.scores[1, 0] = np.nan
    path = save_scores(tmp_path / "nan.npz", bad)
    assert tsn_main(["fuse", str(good), str(path)]) == 2
    assert "nan.npz" in capsys.readouterr().err
    with pytest.raises(ScoreFileError, match="label"):
        load_scores(save_scores(tmp_path / "lab.npz", _vs(["a", "b"], [0, 5])))


@FUZZ
@given(st.binary(max_size=400))
def test_fuzz_score_reader_raises_only_score_file_error(tmp_path, blob):
    path = tmp_path / "fz.npz"
    path.write_bytes(blob)
    try:
        load_scores(path)
    except ScoreFileError:
        pass


# ---------------------------------------------------------------- configs

@pytest.mark.parametrize("text,match", [
    ('[model]\narchh = "tiny"\n', "unknown config key 'model.archh'"),
    ('[modell]\narch = "tiny"\n', "'modell' is not a config section"),
    ('bogus = 1\n', "unknown config key 'bogus'"),
    ('[solver]\nmax_iter = "ten"\n', "solver.max_iter must be int"),
    ('[solver]\nmax_iter = 1.5\n', "solver.max_iter must be int"),
    ('[solver]\nmax_iter = true\n', "solver.max_iter must be int"),
    ('[solver]\nbase_lr = [0.1]\n', "solver.base_lr must be float"),
    ('[solver]\nstepvalues = 10\n', "solver.stepvalues must be a list"),
    ('[solver]\nstepvalues = ["a"]\n', "solver.stepvalues must be int"),
    ('[model]\narch = 3\n', "model.arch must be str"),
    ('[model]\narch = {x = 1}\n', "model.arch"),
    ("seed = 99999999999999999999999\n", "seed 99999999999999999999999 must be in"),
    ('[solver]\nbase_lr = nan\n', "solver.base_lr"),
    ('[solver]\nbase_lr = inf\n', "solver.base_lr"),
    ('model = 3\n', "model"),
    ('name = "x"\nname = "y"\n', "not valid TOML"),
])
def test_config_unknown_keys_and_wrong_types_name_the_key(tmp_path, text, match):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        load_experiment(path)
    if not match.startswith("seed "):  # range checks (validate) name the key, not the file
        assert str(path) in str(err.value)


def test_config_text_that_looks_like_code_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    code = f"__import__('os').system('touch {marker}')"
    monkeypatch.chdir(tmp_path)
    toml = tmp_path / "c.toml"
    toml.write_text(f'name = "{code}"\n[model]\narch = "tiny"\n')
    exp = load_experiment(toml)
    assert exp.name == code  # kept as an inert string
    with pytest.raises(ConfigError):
        load_experiment(toml, [f"model.arch={code}", f"solver.max_iter={code}"])
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"name": code, "seed": "__import__('os').getpid()"}))
    with pytest.raises(ConfigError, match="seed must be int"):
        load_experiment(js)
    for suffix in (".py", ".yaml", ".pkl", ".toml.py"):
        py = tmp_path / f"c{suffix}"
        py.write_text(f"{code}\n")
        with pytest.raises(ConfigError, match="never Python|.json or .toml"):
            load_experiment(py)
    # pickle payload named .toml: read as text and refused, never unpickled
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "p.toml").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ConfigError):
        load_experiment(tmp_path / "p.toml")
    assert not marker.exists()
    assert tsn_main(["train", str(toml), f"solver.max_iter={code}"]) == 2
    assert not marker.exists()


@FUZZ
@given(st.dictionaries(st.sampled_from(["seed", "name", "threads", "model", "solver", "x"]),
                       st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.booleans(),
                                 st.lists(st.integers(), max_size=2),
                                 st.dictionaries(st.sampled_from(["arch", "base_lr", "q"]),
                                                 st.one_of(st.integers(), st.text(max_size=3)),
                                                 max_size=2)),
                       max_size=4))
def test_fuzz_config_values_raise_only_config_error(tmp_path, data):
    path = tmp_path / "fz.json"
    path.write_text(json.dumps(data))
    try:
        load_experiment(path)
    except ConfigError:
        pass

