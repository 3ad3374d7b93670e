"""Reading extracted frames (dense_flow layout) with one clear error per bad file.

`<dir>/img_00001.jpg` (BGR colour) and `<dir>/flow_x_00001.jpg` / `flow_y_00001.jpg`
(grayscale) as Caffe VideoData reads them: cv::imread colour / grayscale (video_data_layer.cpp).

The files of one video come from a frame source: a `FrameFolder` on disk (what `tsn extract`
wrote; every dataset's default) or `EncodedFrames`, the same JPEG bytes held in memory
(`tsn predict` encodes the frames and flow it needs as extraction would and never writes
them). Both are decoded by the same `tsn.data.jpeg.decode`, so the pixels are equal.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

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


@dataclass(frozen=True)
class FrameFolder:
    """A video's extracted frame files on disk (`<folder>/img_00001.jpg`, ...)."""

    folder: str

    def where(self, name: str) -> str:
        """The path of file `name` (error messages name it)."""
        return os.path.join(self.folder, name)

    def read(self, name: str) -> bytes:
        """The JPEG bytes of file `name`; missing or truncated raises DataError."""
        return read_jpeg(self.where(name))


@dataclass(frozen=True)
class EncodedFrames:
    """A video's frame files held in memory: file name -> the JPEG bytes `tsn extract` would
    have written (tsn.flow.batched.encode_jpeg), for the files a test protocol reads."""

    video: str  # what error messages call the video (its path)
    files: Mapping[str, bytes]

    def where(self, name: str) -> str:
        """`<video>:<file name>` (error messages name it)."""
        return f"{self.video}:{name}"

    def read(self, name: str) -> bytes:
        """The JPEG bytes of file `name`; one that was not encoded raises DataError."""
        try:
            return self.files[name]
        except KeyError:
            raise DataError(f"{self.where(name)}: frame not decoded from the video (the "
                            "protocol asked for a file outside the ones prepared)") from None


FrameSource = FrameFolder | EncodedFrames


def as_source(folder: str | FrameSource) -> FrameSource:
    """A frame source: a folder path becomes a FrameFolder; a source is returned as it is."""
    return folder if isinstance(folder, (FrameFolder, EncodedFrames)) else FrameFolder(folder)


def read_stack(source: str | FrameSource, files: list[int], patterns: tuple[str, ...],
               color: bool) -> list[np.ndarray]:
    """Decoded images of the given 1-based frames, frame-major in `patterns` order (a
    modality's `files`): BGR (color) or gray, one DataError per bad file."""
    source = as_source(source)
    names = [pattern.format(i) for i in files for pattern in patterns]
    return [jpeg.decode(source.read(n), color, source.where(n)) for n in names]


def read_rgb_stack(folder: str | FrameSource, files: list[int]) -> list[np.ndarray]:
    """BGR frames img_%05d.jpg for the given 1-based indices."""
    return read_stack(folder, files, RGB_FILES, True)


def read_flow_stack(folder: str | FrameSource, files: list[int]) -> list[np.ndarray]:
    """Gray flow images x1, y1, x2, y2, ... for the given 1-based indices (Caffe order)."""
    return read_stack(folder, files, FLOW_FILES, False)


def stack_channels(images: list[np.ndarray], folder: str) -> np.ndarray:
    """Concatenate HxW(xC) images on the channel axis; differing sizes raise DataError."""
    shapes = {im.shape[:2] for im in images}
    if len(shapes) != 1:
        raise DataError(f"{folder}: frames of one video differ in size {sorted(shapes)}; "
                        "re-extract it")
    if images[0].ndim == 2:
        return np.stack(images, axis=2)
    return np.concatenate(images, axis=2)
