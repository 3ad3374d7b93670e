"""JPEG bytes -> uint8 pixels, whole frame or only a crop box, as Caffe's cv::imread sees them.

Two backends give the same pixels (tests/test_data_jpeg.py checks bit identity):
- `tsn.data._jpeg`, the C extension built by `make setup` (setup.py) on libjpeg-turbo: it decodes
  only the rows and iMCU columns around a crop box, which is what makes training samples fast,
  and it refuses JPEGs that libjpeg can only decode with warnings (damaged entropy data);
- `cv2.imdecode` (whole frame, then slice) where the extension is not built, where the file
  carries EXIF data (OpenCV applies its orientation) or uses a colour space the extension
  leaves to OpenCV (CMYK / YCCK).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

from tsn.data.errors import DataError

try:
    from tsn.data import _jpeg
except ImportError:  # built by `make setup`; without it every decode goes through OpenCV
    _jpeg = None

Box = tuple[int, int, int, int]  # (y, x, height, width) in pixels

BACKEND = ("libjpeg-turbo crop-box decoder (tsn.data._jpeg)" if _jpeg is not None
           else "cv2.imdecode (tsn.data._jpeg not built: run `make setup`)")


def crop_decoder_available() -> bool:
    """Whether the C crop-box decoder is built and imported."""
    return _jpeg is not None


@contextmanager
def opencv_only() -> Iterator[None]:
    """Decode through OpenCV inside the block (the benchmark and tests compare the backends)."""
    global _jpeg
    saved, _jpeg = _jpeg, None
    try:
        yield
    finally:
        _jpeg = saved


def _has_exif(data: bytes) -> bool:
    """True if an APPn segment before the frame header is EXIF (OpenCV would rotate by it)."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:
        if data[pos + 1] == 0xE1 and data[pos + 4:pos + 10] == b"Exif\x00\x00":
            return True
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False


def _use_extension(data: bytes) -> bool:
    return _jpeg is not None and not _has_exif(data)


def _opencv(data: bytes, color: bool, path: str) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8),
                       cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise DataError(f"{path}: cannot decode JPEG; re-extract this video")
    return img


def _corrupt(path: str, error: Exception) -> DataError:
    return DataError(f"{path}: corrupt JPEG ({error}); re-extract this video")


def image_size(data: bytes, path: str) -> tuple[int, int]:
    """(height, width) of a JPEG from its header (the whole image is decoded without the
    extension)."""
    if _use_extension(data):
        try:
            width, height, _ = _jpeg.size(data)
            return height, width
        except _jpeg.JPEGError as e:
            raise _corrupt(path, e) from None
    return _opencv(data, False, path).shape[:2]


def decode(data: bytes, color: bool, path: str, box: Box | None = None,
           size: tuple[int, int] | None = None) -> np.ndarray:
    """HxWx3 BGR (color) or HxW gray uint8 of the whole image, or of `box` only.

    `size` (height, width), if given, is what the image must measure (one video's frames
    share a size); any mismatch, decode error or libjpeg warning raises DataError naming path.
    """
    if _use_extension(data):
        y, x, h, w = box if box is not None else (0, 0, 0, 0)  # 0 x 0: the whole image
        try:
            buf, width, height, channels = _jpeg.decode(data, not color, x, y, w, h)
        except _jpeg.UnsupportedJPEG:
            pass  # CMYK / YCCK: OpenCV converts them below
        except _jpeg.JPEGError as e:
            if size is not None:  # a frame of another size says so, not "box outside"
                _check_size(path, image_size(data, path), size)
            raise _corrupt(path, e) from None
        else:
            _check_size(path, (height, width), size)
            shape = (h, w) if box is not None else (height, width)
            return np.frombuffer(buf, np.uint8).reshape(shape + ((channels,) if color else ()))
    img = _opencv(data, color, path)
    _check_size(path, img.shape[:2], size)
    if box is None:
        return img
    y, x, h, w = box
    if y < 0 or x < 0 or y + h > img.shape[0] or x + w > img.shape[1]:
        raise DataError(f"{path}: crop box {w}x{h} at ({x}, {y}) outside the "
                        f"{img.shape[1]}x{img.shape[0]} image")
    return img[y:y + h, x:x + w]


def _check_size(path: str, got: tuple[int, int], want: tuple[int, int] | None) -> None:
    if want is not None and tuple(got) != tuple(want):
        raise DataError(f"{path}: frame is {got[1]}x{got[0]} but the video's first frame is "
                        f"{want[1]}x{want[0]}; re-extract it")
