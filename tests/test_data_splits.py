"""Official split files (written here byte-exact in the official formats) -> entries, labels,
counts; TSN file lists; errors on bad input."""

from __future__ import annotations

import pytest

from tsn.data.errors import DataError
from tsn.data.splits import read_hmdb51_split, read_ucf101_split
from tsn.data.video_list import (
    VideoRecord,
    build_records,
    read_file_list,
    write_file_list,
)

# [TSN] data/hmdb51_splits/class_list.txt order (docs/caffe_release.md#hmdb51-splits; note climb <
# climb_stairs)
HMDB_CAFFE_ORDER = (
    "brush_hair cartwheel catch chew clap climb climb_stairs dive draw_sword dribble drink eat "
    "fall_floor fencing flic_flac golf handstand hit hug jump kick_ball kick kiss laugh pick pour "
    "pullup punch push pushup ride_bike ride_horse run shake_hands shoot_ball shoot_bow shoot_gun "
    "sit situp smile smoke somersault stand swing_baseball sword_exercise sword talk throw turn "
    "walk wave"
).split()
UCF_COUNTS = {1: (9537, 3783), 2: (9586, 3734), 3: (9624, 3696)}  # caffe_release.md#ucf101-splits


def ucf_classes() -> list[str]:
    """101 class names, alphabetical, with the real class 37 name."""
    names = sorted(f"Class{i:03d}" for i in range(100))
    return names[:36] + ["HandstandPushups"] + names[36:]


def video_name(cls: str, g: int, c: int) -> str:
    # the official quirk: folder HandstandPushups, files v_HandStandPushups_*
    stem = "HandStandPushups" if cls == "HandstandPushups" else cls
    return f"{cls}/v_{stem}_g{g:02d}_c{c:02d}.avi"


def write_ucf_splits(folder, split_counts=UCF_COUNTS):
    """classInd + train/testlist 01-03 in the official CRLF format with the official sizes."""
    classes = ucf_classes()
    with open(folder / "classInd.txt", "wb") as f:
        f.write("".join(f"{i} {c}\r\n" for i, c in enumerate(classes, 1)).encode())
    for k, (n_train, n_test) in split_counts.items():
        for name, n, labelled in (("trainlist", n_train, True), ("testlist", n_test, False)):
            lines = []
            for j in range(n):
                ci = j % 101
                g0 = 8 if labelled else 1  # disjoint groups for train and test
                v = video_name(classes[ci], g0 + j // 101 // 7, 1 + (j // 101) % 7)
                lines.append(f"{v} {ci + 1}" if labelled else v)
            (folder / f"{name}{k:02d}.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return classes


def write_hmdb_splits(folder, classes=HMDB_CAFFE_ORDER):
    """153 `<class>_test_split<k>.txt` files: 70 train, 30 test, 32-33 unused per class."""
    for k in (1, 2, 3):
        for ci, cls in enumerate(classes):
            n_unused = 33 if ci < 34 else 32  # 1,666 unused (docs/datasets_and_ports.md)
            flags = [1] * 70 + [2] * 30 + [0] * n_unused
            # rotate so each split marks different videos, as the official splits do
            flags = flags[k * 7:] + flags[:k * 7]
            text = "".join(f"{cls}_vid{j}_f_cm_np1_ri_med_{j}.avi {m} \n"
                           for j, m in enumerate(flags))
            (folder / f"{cls}_test_split{k}.txt").write_bytes(text.encode())


def test_ucf101_counts_labels_and_quirks(tmp_path):
    classes = write_ucf_splits(tmp_path)
    for k, (n_train, n_test) in UCF_COUNTS.items():
        s = read_ucf101_split(tmp_path, k)
        assert (len(s.train), len(s.test)) == (n_train, n_test)
        assert len(s.classes) == 101 and s.classes[36] == "HandstandPushups"
    s = read_ucf101_split(tmp_path, 1)
    # label = classInd index - 1, taken from the class folder
    assert all(s.classes[e.label] == e.class_name for e in s.train + s.test)
    hsp = [e for e in s.test if e.class_name == "HandstandPushups"]
    assert hsp and hsp[0].label == 36
    assert hsp[0].video_id.startswith("v_HandStandPushups_g")  # file-name case kept
    assert "\r" not in hsp[0].video_id and "." not in hsp[0].video_id
    assert s.classes == tuple(classes)


def test_ucf101_unknown_class_folder_is_named(tmp_path):
    write_ucf_splits(tmp_path, {1: (5, 5)})
    p = tmp_path / "testlist01.txt"
    p.write_bytes(p.read_bytes() + b"NoSuchClass/v_NoSuchClass_g01_c01.avi\r\n")
    with pytest.raises(DataError, match="NoSuchClass"):
        read_ucf101_split(tmp_path, 1)


def test_hmdb51_counts_and_caffe_class_order(tmp_path):
    # write in plain alphabetical order: the parser must derive the Caffe order itself
    write_hmdb_splits(tmp_path, sorted(HMDB_CAFFE_ORDER))
    for k in (1, 2, 3):
        s = read_hmdb51_split(tmp_path, k)
        assert (len(s.train), len(s.test)) == (3570, 1530)
        assert s.classes == tuple(HMDB_CAFFE_ORDER)
    s = read_hmdb51_split(tmp_path, 1)
    assert s.classes.index("kick_ball") == 20 and s.classes.index("kick") == 21
    assert s.classes.index("sword_exercise") == 44 and s.classes.index("sword") == 45
    assert s.classes.index("climb") == 5 and s.classes.index("climb_stairs") == 6
    e = next(e for e in s.train if e.class_name == "kick")
    assert e.label == 21 and e.video.startswith("kick/")
    m = read_hmdb51_split(tmp_path, 1, class_order="mmaction")
    assert m.classes.index("kick") == 20 and m.classes.index("kick_ball") == 21


def test_hmdb51_bad_marker_names_file(tmp_path):
    write_hmdb_splits(tmp_path, ["brush_hair", "cartwheel"])
    (tmp_path / "cartwheel_test_split1.txt").write_text("x.avi 7 \n")
    with pytest.raises(DataError, match="cartwheel_test_split1.txt"):
        read_hmdb51_split(tmp_path, 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no '\\*_test_split2.txt'"):
        read_hmdb51_split(tmp_path / "empty", 2)


def test_file_list_roundtrip_and_errors(tmp_path):
    recs = [VideoRecord("a/v1", 30, 0), VideoRecord("b/v2", 12, 4)]
    p = write_file_list(recs, tmp_path / "list.txt")
    assert read_file_list(p) == recs
    assert read_file_list(p, root="/r")[0].path == "/r/a/v1"
    with pytest.raises(DataError, match="b/v2 has label 4"):
        read_file_list(p, num_classes=4)
    (tmp_path / "bad.txt").write_text("a/v1 30\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        read_file_list(tmp_path / "bad.txt")
    (tmp_path / "bad2.txt").write_text("a/v1 x 3\n")
    with pytest.raises(DataError, match="integers"):
        read_file_list(tmp_path / "bad2.txt")


def test_build_records_counts_frames_and_names_missing_video(tmp_path):
    write_ucf_splits(tmp_path, {1: (3, 2)})
    s = read_ucf101_split(tmp_path, 1)
    frames = tmp_path / "frames"
    for e in s.train:
        d = frames / e.video_id  # flat Caffe layout
        d.mkdir(parents=True)
        for i in range(1, 8):
            (d / f"img_{i:05d}.jpg").touch()
            (d / f"flow_x_{i:05d}.jpg").touch()
            (d / f"flow_y_{i:05d}.jpg").touch()
    recs = build_records(frames, s.train, "flow")
    assert [r.num_frames for r in recs] == [7, 7, 7]
    assert [r.label for r in recs] == [e.label for e in s.train]
    with pytest.raises(DataError, match=s.test[0].video_id):
        build_records(frames, s.test, "rgb")


def test_build_records_refuses_one_folder_for_two_videos(tmp_path):
    from tsn.data.splits import SplitEntry

    (tmp_path / "v_x").mkdir()
    (tmp_path / "v_x" / "img_00001.jpg").touch()
    entries = [SplitEntry("a/v_x.avi", "v_x", "a", 0), SplitEntry("b/v_x.avi", "v_x", "b", 1)]
    with pytest.raises(DataError, match="--level 2"):
        build_records(tmp_path, entries, "rgb")
