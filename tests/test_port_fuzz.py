"""Fuzz the prototxt and caffemodel readers: any input either parses or raises CaffeFormatError."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prototxt_port as pp

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _tiny(golden_dir: Path) -> tuple[str, bytes]:
    folder = golden_dir / "C_solver_tiny"
    return (folder / "tiny_train.prototxt").read_text(), (
        folder / "params_init.caffemodel"
    ).read_bytes()


@FUZZ
@given(data=st.data())
def test_caffemodel_reader_never_crashes(golden_dir, tmp_path, data):
    _, raw = _tiny(golden_dir)
    kind = data.draw(st.sampled_from(["truncate", "flip", "random", "splice"]))
    if kind == "truncate":
        blob = raw[: data.draw(st.integers(0, len(raw)))]
    elif kind == "flip":
        position = data.draw(st.integers(0, len(raw) - 1))
        blob = (
            raw[:position]
            + bytes([raw[position] ^ data.draw(st.integers(1, 255))])
            + raw[position + 1 :]
        )
    elif kind == "splice":
        cut = data.draw(st.integers(0, len(raw)))
        blob = raw[:cut] + data.draw(st.binary(max_size=64)) + raw[cut:]
    else:
        blob = data.draw(st.binary(max_size=512))
    path = tmp_path / "fuzz.caffemodel"
    path.write_bytes(blob)
    try:
        blobs = pp.read_caffemodel(path)
    except pp.CaffeFormatError as err:
        assert "fuzz.caffemodel" in str(err)
        return
    for arrays in blobs.values():  # what parses is self-consistent
        assert all(a.dtype.name == "float32" for a in arrays)


@FUZZ
@given(data=st.data())
def test_prototxt_reader_never_crashes(golden_dir, tmp_path, data):
    text, _ = _tiny(golden_dir)
    kind = data.draw(st.sampled_from(["delete", "insert", "replace_token"]))
    if kind == "delete":
        start = data.draw(st.integers(0, len(text)))
        text = text[:start] + text[start + data.draw(st.integers(1, 40)) :]
    elif kind == "insert":
        start = data.draw(st.integers(0, len(text)))
        text = (
            text[:start]
            + data.draw(st.text(alphabet='{}:"[], \n#abc019.-', max_size=20))
            + text[start:]
        )
    else:
        tokens = text.split(" ")
        index = data.draw(st.integers(0, len(tokens) - 1))
        tokens[index] = data.draw(
            st.sampled_from(["{", "}", ":", '"x"', "-1", "1e99", "BN", "", "nan"])
        )
        text = " ".join(tokens)
    path = tmp_path / "fuzz.prototxt"
    path.write_text(text)
    try:
        pp.load_net(path, input_shapes={"data": (2, 3, 6, 6), "label": (2,)}, phase="train")
    except pp.CaffeFormatError as err:
        assert "fuzz.prototxt" in str(err)
