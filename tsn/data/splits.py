"""Official UCF101 and HMDB51 split files -> (train, test) entries with 0-based labels.

UCF101 (docs/caffe_release.md#ucf101-splits, docs/datasets_and_ports.md#ucf101): `classInd.txt`
(`<1-based index> <Class>`), `trainlist0k.txt` (`<Class>/<video>.avi <index>`), `testlist0k.txt`
(`<Class>/<video>.avi`), CRLF. As [TSN] does, the label comes from the class *folder* via classInd
(index - 1) and the video id is the file name up to the first '.'; the folder/file-name case
mismatch of class 37 (`HandstandPushups/v_HandStandPushups_*.avi`) is therefore harmless.

HMDB51 (docs/caffe_release.md#hmdb51-splits): `<class>_test_split<k>.txt` files with `<video>.avi
<flag> ` lines (1 train, 2 test, 0 unused). Class order "caffe" (default) is [TSN]
data/hmdb51_splits/class_list.txt, kept below as a table: kick_ball before kick and sword_exercise
before sword, but climb before climb_stairs -- so it is NOT simply the sort order of the split-file
names as one might expect (that would put climb_stairs first; checked against the file itself).
"mmaction" is plain sorted class names (mmaction2 / gluon-cv); the two orders disagree on 4 labels.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tsn.data.errors import DataError

log = logging.getLogger(__name__)

HMDB_CLASS_ORDERS = ("caffe", "mmaction")
# [TSN] data/hmdb51_splits/class_list.txt, label = 0-based line index (trailing spaces dropped)
HMDB51_CAFFE_CLASSES = (
    "brush_hair", "cartwheel", "catch", "chew", "clap", "climb", "climb_stairs", "dive",
    "draw_sword", "dribble", "drink", "eat", "fall_floor", "fencing", "flic_flac", "golf",
    "handstand", "hit", "hug", "jump", "kick_ball", "kick", "kiss", "laugh", "pick", "pour",
    "pullup", "punch", "push", "pushup", "ride_bike", "ride_horse", "run", "shake_hands",
    "shoot_ball", "shoot_bow", "shoot_gun", "sit", "situp", "smile", "smoke", "somersault",
    "stand", "swing_baseball", "sword_exercise", "sword", "talk", "throw", "turn", "walk", "wave",
)
# UCF101 classInd.txt (docs/caffe_release.md#ucf101-splits): label = 1-based index - 1, in
# alphabetical order ignoring case (`1 ApplyEyeMakeup` ... `37 HandstandPushups` ... `101 YoYo`)
UCF101_CLASSES = (
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching",
    "BaseballPitch", "Basketball", "BasketballDunk", "BenchPress", "Biking", "Billiards",
    "BlowDryHair", "BlowingCandles", "BodyWeightSquats", "Bowling", "BoxingPunchingBag",
    "BoxingSpeedBag", "BreastStroke", "BrushingTeeth", "CleanAndJerk", "CliffDiving",
    "CricketBowling", "CricketShot", "CuttingInKitchen", "Diving", "Drumming", "Fencing",
    "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch", "FrontCrawl", "GolfSwing", "Haircut",
    "Hammering", "HammerThrow", "HandstandPushups", "HandstandWalking", "HeadMassage", "HighJump",
    "HorseRace", "HorseRiding", "HulaHoop", "IceDancing", "JavelinThrow", "JugglingBalls",
    "JumpingJack", "JumpRope", "Kayaking", "Knitting", "LongJump", "Lunges", "MilitaryParade",
    "Mixing", "MoppingFloor", "Nunchucks", "ParallelBars", "PizzaTossing", "PlayingCello",
    "PlayingDaf", "PlayingDhol", "PlayingFlute", "PlayingGuitar", "PlayingPiano", "PlayingSitar",
    "PlayingTabla", "PlayingViolin", "PoleVault", "PommelHorse", "PullUps", "Punch", "PushUps",
    "Rafting", "RockClimbingIndoor", "RopeClimbing", "Rowing", "SalsaSpin", "ShavingBeard",
    "Shotput", "SkateBoarding", "Skiing", "Skijet", "SkyDiving", "SoccerJuggling",
    "SoccerPenalty", "StillRings", "SumoWrestling", "Surfing", "Swing", "TableTennisShot",
    "TaiChi", "TennisSwing", "ThrowDiscus", "TrampolineJumping", "Typing", "UnevenBars",
    "VolleyballSpiking", "WalkingWithDog", "WallPushups", "WritingOnBoard", "YoYo",
)
SPLITS = (1, 2, 3)
NUM_CLASSES = {"ucf101": 101, "hmdb51": 51}  # classInd.txt / class_list.txt lengths


@dataclass(frozen=True)
class SplitEntry:
    """One video of a split: its relative path, id (frame-folder name), class and label."""

    video: str  # as named by the split file, with class folder: "Class/v_x.avi"
    video_id: str  # file name up to the first '.' (dense_flow output folder name)
    class_name: str
    label: int  # 0-based


@dataclass(frozen=True)
class Split:
    """One official split of a dataset."""

    dataset: str
    split: int
    classes: tuple[str, ...]  # label -> class name
    train: tuple[SplitEntry, ...]
    test: tuple[SplitEntry, ...]


def _lines(path: Path) -> list[str]:
    """Non-empty stripped lines (CRLF or LF) of a text split file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(
            f"{path}: cannot read split file ({err.strerror}); `make data-ucf101` / "
            "`make data-hmdb51` downloads the official ones"
        ) from None
    # files re-saved by an editor may carry a UTF-8 BOM or be UTF-16; both are read as-is
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 or UTF-16 text (byte {err.start}: {err.reason}); the official "
            "split files are ASCII: re-download them"
        ) from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _check_entries(where: str, entries: list[tuple[str, SplitEntry]],
                   test_ids: set[str] | None = None) -> None:
    """Refuse a video listed twice, or in both lists: it would silently count twice."""
    seen: set[str] = set()
    for path, e in entries:
        if e.video_id in seen:
            raise DataError(f"{path}: video {e.video} is listed more than once")
        seen.add(e.video_id)
        if test_ids is not None and e.video_id in test_ids:
            raise DataError(f"{path}: video {e.video} is in both the training and test lists "
                            f"of {where}")


def _check_split(split: int) -> None:
    if split not in SPLITS:
        raise DataError(f"split must be 1, 2 or 3, got {split}")


def video_id_of(name: str) -> str:
    """Video id = file name up to the first '.' ([TSN] parser, dense_flow folder naming)."""
    return os.path.basename(name).split(".")[0]


def read_ucf101_classes(split_dir: str | os.PathLike) -> tuple[str, ...]:
    """Class names in label order from classInd.txt (label = index - 1)."""
    return read_ucf101_classes_file(Path(split_dir) / "classInd.txt")


def read_ucf101_split(split_dir: str | os.PathLike, split: int = 1) -> Split:
    """UCF101 split `split` (1-3) from the official ucfTrainTestlist folder."""
    _check_split(split)
    split_dir = Path(split_dir)
    classes = read_ucf101_classes(split_dir)
    index = {c: i for i, c in enumerate(classes)}

    def parse(name: str, has_label: bool) -> tuple[SplitEntry, ...]:
        path = split_dir / name
        out = []
        for ln in _lines(path):
            parts = ln.split()
            video = parts[0]
            cls = video.split("/")[0] if "/" in video else None
            if cls not in index:
                raise DataError(
                    f"{path}: video {video} names class folder {cls!r}, which is not in "
                    "classInd.txt"
                )
            label = index[cls]
            if has_label and len(parts) > 1 and parts[1] != str(label + 1):
                # [TSN] ignores this column; a disagreement means a foreign or edited file
                log.warning("%s: %s has index %s but its folder %s is class %d",
                            path, video, parts[1], cls, label + 1)
            out.append(SplitEntry(video, video_id_of(video), cls, label))
        return tuple(out)

    train = parse(f"trainlist{split:02d}.txt", True)
    test = parse(f"testlist{split:02d}.txt", False)
    for name, entries in ((f"trainlist{split:02d}.txt", train), (f"testlist{split:02d}.txt", test)):
        if not entries:
            raise DataError(f"{split_dir / name}: no videos listed (empty or truncated file)")
    _check_entries(f"split {split}", [(split_dir / f"testlist{split:02d}.txt", e) for e in test])
    _check_entries(f"split {split}",
                   [(split_dir / f"trainlist{split:02d}.txt", e) for e in train],
                   {e.video_id for e in test})
    return Split("ucf101", split, classes, train, test)


def _hmdb_files(split_dir: Path, split: int) -> list[tuple[str, Path]]:
    """(class name, file) per `<class>_test_split<k>.txt`, in file-name sort order."""
    suffix = f"_test_split{split}.txt"
    try:
        names = sorted(n for n in os.listdir(split_dir) if n.endswith(suffix))
    except OSError as err:
        raise DataError(
            f"{split_dir}: cannot list the HMDB51 split folder ({err.strerror})"
        ) from None
    if not names:
        raise DataError(
            f"{split_dir}: no '*{suffix}' files (the testTrainMulti_7030_splits folder of "
            "test_train_splits.rar); `make data-hmdb51` downloads it"
        )
    # class = file name minus its last two '_' parts ("kick_ball_test_split1.txt" -> kick_ball)
    return [("_".join(n.split("_")[:-2]), split_dir / n) for n in names]


def read_hmdb51_split(
    split_dir: str | os.PathLike, split: int = 1, class_order: str = "caffe"
) -> Split:
    """HMDB51 split `split` (1-3); `class_order` "caffe" (release, default) or "mmaction".

    Entries are in sorted split-file order (deterministic; [TSN] used unsorted glob order,
    which is machine-dependent, docs/caffe_release.md#hmdb51-splits).
    """
    _check_split(split)
    if class_order not in HMDB_CLASS_ORDERS:
        raise DataError(f"class_order must be one of {HMDB_CLASS_ORDERS}, got {class_order!r}")
    files = _hmdb_files(Path(split_dir), split)
    names = [c for c, _ in files]
    if class_order == "caffe":
        unknown = sorted(set(names) - set(HMDB51_CAFFE_CLASSES))
        if unknown:
            raise DataError(
                f"{split_dir}: classes {unknown[:5]} are not HMDB51 classes of the Caffe "
                "class_list.txt; use class_order='mmaction' for other class sets"
            )
        classes = tuple(c for c in HMDB51_CAFFE_CLASSES if c in set(names))
    else:
        classes = tuple(sorted(names))
    index = {c: i for i, c in enumerate(classes)}
    train, test = [], []
    for cls, path in files:
        in_file: list[tuple[Path, SplitEntry]] = []
        for ln in _lines(path):
            parts = ln.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DataError(f"{path}: expected '<video>.avi <0|1|2>' lines, got {ln!r}")
            entry = SplitEntry(f"{cls}/{parts[0]}", video_id_of(parts[0]), cls, index[cls])
            in_file.append((path, entry))
            if parts[1] == "1":
                train.append(entry)
            elif parts[1] == "2":
                test.append(entry)
        _check_entries(f"split {split}", in_file)  # per file: one class's videos
    return Split("hmdb51", split, classes, tuple(train), tuple(test))


def read_split(dataset: str, split_dir: str | os.PathLike, split: int = 1,
               class_order: str = "caffe") -> Split:
    """Dispatch on the dataset name: "ucf101" (also the synthetic set) or "hmdb51"."""
    if dataset in ("ucf101", "synth"):
        return read_ucf101_split(split_dir, split)
    if dataset == "hmdb51":
        return read_hmdb51_split(split_dir, split, class_order)
    raise DataError(f"unknown dataset {dataset!r}: use ucf101, hmdb51 or synth")


def official_classes(dataset: str) -> tuple[str, ...]:
    """Class names in label order of a dataset: UCF101's classInd.txt, HMDB51's Caffe
    class_list.txt, or the classes `tsn synth` writes ("synth"); DataError for another name."""
    if dataset == "ucf101":
        return UCF101_CLASSES
    if dataset == "hmdb51":
        return HMDB51_CAFFE_CLASSES
    if dataset in ("synth", "synthetic"):
        from tsn.data.synth import CLASSES

        return CLASSES
    raise DataError(f"no official class list for dataset {dataset!r}: use ucf101, hmdb51 or "
                    "synth, or give the names in a file")


def read_class_names(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names in label order from a file: UCF101's classInd.txt format (`<index> <Name>`
    lines, 1-based) or one name per line (label = line number - 1)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such class-name file")
    lines = _lines(path)
    if not lines:
        raise DataError(f"{path}: no class names in the file")
    numbered = [ln.split(None, 1) for ln in lines]
    if all(len(p) == 2 and p[0].isdigit() for p in numbered):
        return read_ucf101_classes_file(path)
    return tuple(lines)


def read_ucf101_classes_file(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names from a classInd.txt-format file at any path (see read_ucf101_classes)."""
    path = Path(path)
    classes: dict[int, str] = {}
    for ln in _lines(path):
        parts = ln.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DataError(f"{path}: expected '<index> <ClassName>' lines, got {ln!r}")
        classes[int(parts[0])] = parts[1]
    if sorted(classes) != list(range(1, len(classes) + 1)):
        raise DataError(f"{path}: class indices must be 1..N without gaps")
    return tuple(classes[i] for i in range(1, len(classes) + 1))
