"""`tsn synth`: a small seeded dataset in UCF101's exact on-disk format.

Layout (as UCF101.rar + UCF101TrainTestSplits-RecognitionTask.zip unpack,
docs/datasets_and_ports.md#ucf101):
`<out>/UCF-101/<Class>/v_<Class>_gXX_cYY.avi` and `<out>/ucfTrainTestlist/` with
`classInd.txt`, `trainlist01.txt`, `testlist01.txt` (CRLF, 1-based indices; test groups
g01.., train groups g08.., as split 1 of UCF101 uses g01-g07 for testing).

Eight classes in four pairs. Each pair has its own scene colour, what a single RGB frame shows
(as the pool or the track that tells UCF101's swimming strokes from its running events), and the
two classes of a pair differ by one cue only:
* colour: RedScene / GreenScene -- the scene's tint (red or green) is the cue; the object moves
  sideways, left or right at random, so motion says nothing about the colour;
* motion: MoveUp / MoveDown (blue scene) -- identical look, the object's direction. Up and down,
  not left and right: TSN's training flips frames left-right half of the time (negating the
  horizontal flow, as the release's data layer does), which would teach every stream to see a
  left and a right mover alike;
* motion under camera pan: PanObjectUp / PanObjectDown (grey scene) -- the whole scene pans left
  or right at random and the object moves up or down in it (its vertical flow tells; warped
  flow also removes the pan);
* long-range order: CircleThenSquare / SquareThenCircle (purple scene) -- both shapes appear, in
  opposite order, standing still; a single frame or an order-free consensus (TSN's average)
  cannot separate them, so these two measure whether a model uses temporal order (expect chance
  with average consensus).

`APPEARANCE` and `MOTION` say what a frame and what the flow show of each class to a stream
trained the TSN way (mirrored frames, average consensus); classes that look alike to a stream
cannot be told apart by it, which sets each stream's ceiling (`stream_groups`, `ceiling`): the
demo's report states it (docs/reproduce.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

CLASSES = (
    "CircleThenSquare", "GreenScene", "MoveDown", "MoveUp", "PanObjectDown", "PanObjectUp",
    "RedScene", "SquareThenCircle",
)  # alphabetical, as classInd.txt is
WIDTH, HEIGHT = 320, 240  # UCF101's native size
FPS = 25.0
# object side in pixels: a third of the frame height, large enough for a small CPU net's pooled
# flow features to see it move (the demo's tiny 2-conv TSN averages over the whole image)
OBJECT = 80
# BGR gains of each class's scene (the background texture), jittered by +-10% per video. Red
# and green have the same grey level (0.114 B + 0.587 G + 0.299 R = 0.898, what flow extraction
# sees), so that the flow of the two is alike (no brightness cue).
SCENE_GAINS = {
    "RedScene": (0.6, 0.7, 1.4), "GreenScene": (0.6, 1.057, 0.7),
    "MoveDown": (1.4, 0.8, 0.6), "MoveUp": (1.4, 0.8, 0.6),  # blue
    "PanObjectUp": (1.0, 1.0, 1.0), "PanObjectDown": (1.0, 1.0, 1.0),  # grey
    "CircleThenSquare": (1.3, 0.6, 1.3), "SquareThenCircle": (1.3, 0.6, 1.3),  # purple
}
# (class, class, the one cue that tells them apart)
PAIRS = (("RedScene", "GreenScene", "colour"), ("MoveUp", "MoveDown", "motion"),
         ("PanObjectUp", "PanObjectDown", "motion under a camera pan"),
         ("CircleThenSquare", "SquareThenCircle", "order in time"))
# What one RGB frame shows of a class (appearance only: no motion, no order)
APPEARANCE = {
    "RedScene": "red scene, a disk", "GreenScene": "green scene, a disk",
    "MoveUp": "blue scene, a disk", "MoveDown": "blue scene, a disk",
    "PanObjectUp": "grey scene, a disk", "PanObjectDown": "grey scene, a disk",
    "CircleThenSquare": "purple scene, a disk and a square",
    "SquareThenCircle": "purple scene, a disk and a square",
}
# What optical flow shows of a class, order-free (grey-level motion only: no colour, no shape;
# the average consensus forgets when each snippet was taken) and mirror-free (training flips
# frames left-right and negates the x flow: left and right motion are one view)
MOTION = {
    "RedScene": "an object moving sideways", "GreenScene": "an object moving sideways",
    "MoveUp": "an object moving up", "MoveDown": "an object moving down",
    "PanObjectUp": "the scene panning, an object moving up in it",
    "PanObjectDown": "the scene panning, an object moving down in it",
    "CircleThenSquare": "an object standing still (and changing shape once)",
    "SquareThenCircle": "an object standing still (and changing shape once)",
}
SEES = {"rgb": APPEARANCE, "flow": MOTION, "warped_flow": MOTION}  # modality -> its view


@dataclass(frozen=True)
class SynthConfig:
    """Size and seed of the synthetic dataset."""

    out: str
    seed: int = 0
    train_per_class: int = 4
    test_per_class: int = 2
    num_frames: int = 32
    codec: str = "XVID"  # FourCC; UCF101 ships xvid .avi (MJPG also works)


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth grey texture (multi-scale noise), uint8 HxW, rich enough for optical flow."""
    acc = np.zeros((h, w), np.float32)
    for scale, weight in ((4, 1.0), (16, 0.8), (48, 0.5)):
        small = rng.random((h // scale + 2, w // scale + 2)).astype(np.float32)
        acc += weight * cv2.resize(small, (w + 2 * scale, h + 2 * scale))[scale:scale + h,
                                                                          scale:scale + w]
    acc = (acc - acc.min()) / (np.ptp(acc) + 1e-6)
    return (40 + 170 * acc).astype(np.uint8)


def object_patch(rng: np.random.Generator, size: int = OBJECT, shape: str = "disk") -> tuple:
    """A bright textured object (BGR) and its mask: disk or square."""
    tex = texture(rng, size, size)
    patch = cv2.merge([np.clip(tex.astype(np.int32) + 60, 0, 255).astype(np.uint8)] * 3)
    mask = np.zeros((size, size), np.uint8)
    if shape == "square":
        mask[6:size - 6, 6:size - 6] = 1
    else:
        cv2.circle(mask, (size // 2, size // 2), size // 2 - 4, 1, -1)
    return patch, mask.astype(bool)


def paste(frame: np.ndarray, patch: np.ndarray, mask: np.ndarray, x: float, y: float) -> None:
    """Paste `patch` where `mask` is set with its top-left at (x, y), clipped to the frame."""
    h, w = mask.shape
    x0, y0 = int(round(x)), int(round(y))
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + w, frame.shape[1]), min(y0 + h, frame.shape[0])
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sub_m = mask[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    region = frame[fy0:fy1, fx0:fx1]
    region[sub_m] = patch[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0][sub_m]


def tint(gray: np.ndarray, bgr_gain) -> np.ndarray:
    """Colour a grey image by per-channel gains."""
    return np.clip(gray[:, :, None] * np.asarray(bgr_gain, np.float32), 0, 255).astype(np.uint8)


def render(cls: str, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """The BGR frames of one video of class `cls`."""
    pad = 4 * n + 64  # room for the camera pan
    bg = texture(rng, HEIGHT + 2 * pad, WIDTH + 2 * pad)
    jitter = rng.uniform(0.9, 1.1, size=3)
    scene = tint(bg, np.asarray(SCENE_GAINS[cls]) * jitter)
    patch, mask = object_patch(rng)
    x, y = rng.uniform(40, WIDTH - OBJECT - 40), rng.uniform(30, HEIGHT - OBJECT - 30)
    speed = rng.uniform(2.5, 4.0)
    vx = rng.choice([-1.0, 1.0]) * speed if cls in ("RedScene", "GreenScene") else 0.0
    vy = {"MoveDown": speed, "MoveUp": -speed, "PanObjectUp": -speed / 1.5,
          "PanObjectDown": speed / 1.5}.get(cls, 0.0)
    if vx:
        x = (WIDTH - OBJECT) / 2 - vx * n / 2  # keep the object in view for the whole clip
    if vy:
        y = (HEIGHT - OBJECT) / 2 - vy * n / 2
    pan = rng.choice([-1.0, 1.0]) * rng.uniform(2.0, 4.0) if cls.startswith("Pan") else 0.0
    shapes = None
    if cls in ("CircleThenSquare", "SquareThenCircle"):
        first, second = ("disk", "square") if cls == "CircleThenSquare" else ("square", "disk")
        shapes = (object_patch(rng, shape=first), object_patch(rng, shape=second))
    frames = []
    for t in range(n):
        cam = pan * t
        ox = int(round(pad + cam))
        frame = np.ascontiguousarray(scene[pad:pad + HEIGHT, ox:ox + WIDTH])
        if shapes is not None:
            p, m = shapes[0] if t < n // 2 else shapes[1]
            paste(frame, p, m, x, y)  # standing still: only the order tells the pair
        else:
            # the object lives in the scene: its image motion is its own plus the pan
            paste(frame, patch, mask, x + vx * t - cam, y + vy * t)
        frames.append(frame)
    return frames


def stream_groups(modalities: Sequence[str]) -> dict[str, tuple[str, ...]] | None:
    """Class -> the classes it looks alike with to these streams together (fused: alike in every
    one of them); None when a modality's view is not stated (e.g. rgb_diff)."""
    if not modalities or any(m not in SEES for m in modalities):
        return None
    view = {c: tuple(SEES[m][c] for m in modalities) for c in CLASSES}
    return {c: tuple(d for d in CLASSES if view[d] == view[c]) for c in CLASSES}


def ceiling(modalities: Sequence[str]) -> float | None:
    """The highest mean class accuracy (in [0, 1]) these streams can reach on this design, in
    expectation: a classifier that cannot tell the g classes of a group apart gets them right
    1/g of the time on average over the group, whatever rule it uses, so the ceiling is the
    mean over classes of 1/(size of the class's group). None when a view is not stated."""
    groups = stream_groups(modalities)
    if groups is None:
        return None
    return sum(1 / len(groups[c]) for c in CLASSES) / len(CLASSES)


def write_video(path: Path, frames: list[np.ndarray], codec: str) -> None:
    """Encode frames to `path` atomically (tmp file + os.replace). The file is read back
    first: cv2.VideoWriter drops a failed write (a disk that fills up) without a word, and a
    short video must not take the place of a whole one."""
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    try:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*codec), FPS, (WIDTH, HEIGHT))
        if not writer.isOpened():
            raise RuntimeError(f"{path}: OpenCV cannot encode FourCC {codec!r}; use XVID or "
                               "MJPG")
        for f in frames:
            writer.write(f)
        writer.release()
        cap = cv2.VideoCapture(str(tmp))
        decoded = 0
        while cap.read()[0]:
            decoded += 1
        cap.release()
        if decoded != len(frames):
            raise RuntimeError(f"{path}: {decoded} of the {len(frames)} encoded frames read "
                               "back (is the disk full?); nothing was kept")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _write_text(path: Path, lines: list[str]) -> None:
    """CRLF text file, atomically (UCF101's split files are CRLF)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes("".join(f"{ln}\r\n" for ln in lines).encode())
    os.replace(tmp, path)


def generate(cfg: SynthConfig, progress: Callable | None = None) -> Path:
    """Write the dataset under cfg.out; returns the split folder. Same seed -> same videos."""
    out = Path(cfg.out)
    videos, splits = out / "UCF-101", out / "ucfTrainTestlist"
    splits.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    jobs = []
    first_train = max(8, cfg.test_per_class + 1)  # split 1 tests g01-g07; more test groups push on
    for ci, cls in enumerate(CLASSES):
        (videos / cls).mkdir(parents=True, exist_ok=True)
        for k in range(cfg.train_per_class + cfg.test_per_class):
            is_test = k < cfg.test_per_class
            group = 1 + k if is_test else first_train + k - cfg.test_per_class
            name = f"{cls}/v_{cls}_g{group:02d}_c01.avi"
            (test if is_test else train).append((name, ci + 1))
            jobs.append((ci, k, cls, name))
    for ci, k, cls, name in jobs:
        rng = np.random.default_rng([cfg.seed, ci, k])
        write_video(videos / name, render(cls, rng, cfg.num_frames), cfg.codec)
        if progress is not None:
            progress(1)
    _write_text(splits / "classInd.txt", [f"{i} {c}" for i, c in enumerate(CLASSES, 1)])
    _write_text(splits / "trainlist01.txt", [f"{n} {lab}" for n, lab in train])
    _write_text(splits / "testlist01.txt", [n for n, _ in test])
    log.info("synthetic dataset: %d train / %d test videos under %s", len(train), len(test), out)
    return splits
