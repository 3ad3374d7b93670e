"""Reading extracted frames (dense_flow layout) with one clear error per bad file.

`<dir>/img_00001.jpg` (BGR colour) and `<dir>/flow_x_00001.jpg` / `flow_y_00001.jpg`
(grayscale) as Caffe VideoData reads them: cv::imread colour / grayscale (video_data_layer.cpp).
"""

from __future__ import annotations

import os

import numpy as np

from tsn.data import jpeg
from tsn.data.errors import DataError
from tsn.modality import FLOW_FILES, RGB_FILES

_JPEG_EOI = b"\xff\xd9"


def read_bytes(path: str) -> bytes:
    """The whole file in one read (os.read after fstat: ~4x less overhead than np.fromfile,
    which matters at three to thirty small JPEGs per sample); missing raises DataError."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        raise DataError(f"{path}: frame missing (list says the video has more frames; "
                        "rebuild the list with `tsn lists` or re-extract)") from None
    try:
        size = os.fstat(fd).st_size
        data = os.read(fd, size)
        while len(data) < size:  # short reads only happen on odd file systems
            more = os.read(fd, size - len(data))
            if not more:
                break
            data += more
        return data
    except OSError as e:  # e.g. a folder named like a frame
        raise DataError(f"{path}: cannot read frame ({e.strerror})") from None
    finally:
        os.close(fd)


def read_jpeg(path: str) -> bytes:
    """The bytes of one JPEG frame; a missing, empty or truncated file raises DataError.

    The end-of-image check matters because decoding stops at the last row a crop box needs
    (tsn.data.jpeg): a cut-off tail would otherwise go unnoticed.
    """
    data = read_bytes(path)
    if len(data) < 4 or data[:2] != b"\xff\xd8" or _JPEG_EOI not in data[-64:]:
        raise DataError(f"{path}: corrupt or truncated JPEG; re-extract this video")
    return data


def read_image(path: str, color: bool) -> np.ndarray:
    """Decode one JPEG (HxWx3 BGR or HxW gray uint8); a missing/truncated file raises DataError.

    Caffe leaves a stale batch slot on an unreadable image (video_data_layer.cpp); we refuse
    instead, and also catch truncated or damaged JPEGs that libjpeg would silently decode with grey
    rows.
    """
    return jpeg.decode(read_jpeg(path), color, path)


def frame_paths(folder: str, files: list[int], patterns: tuple[str, ...]) -> list[str]:
    """Paths of the given 1-based frames, frame-major: with a modality's `files` patterns
    img_%05d.jpg, or flow x1, y1, x2, y2, ... as Caffe reads them (tsn.modality)."""
    return [os.path.join(folder, pattern.format(i)) for i in files for pattern in patterns]


def read_rgb_stack(folder: str, files: list[int]) -> list[np.ndarray]:
    """BGR frames img_%05d.jpg for the given 1-based indices."""
    return [read_image(p, True) for p in frame_paths(folder, files, RGB_FILES)]


def read_flow_stack(folder: str, files: list[int]) -> list[np.ndarray]:
    """Gray flow images x1, y1, x2, y2, ... for the given 1-based indices (Caffe order)."""
    return [read_image(p, False) for p in frame_paths(folder, files, FLOW_FILES)]


def stack_channels(images: list[np.ndarray], folder: str) -> np.ndarray:
    """Concatenate HxW(xC) images on the channel axis; differing sizes raise DataError."""
    shapes = {im.shape[:2] for im in images}
    if len(shapes) != 1:
        raise DataError(f"{folder}: frames of one video differ in size {sorted(shapes)}; "
                        "re-extract it")
    if images[0].ndim == 2:
        return np.stack(images, axis=2)
    return np.concatenate(images, axis=2)
