"""Bad input: one clear CaffeFormatError naming the file and what is wrong; nothing written."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest

import prototxt_port as pp
from prototxt_port import caffe_pb2
from prototxt_port.convert import convert_caffemodel


@pytest.fixture()
def tiny(golden_dir, tmp_path):
    folder = golden_dir / "C_solver_tiny"
    prototxt = tmp_path / "tiny.prototxt"
    shutil.copy(folder / "tiny_train.prototxt", prototxt)
    model = tmp_path / "tiny.caffemodel"
    shutil.copy(folder / "params_init.caffemodel", model)
    return prototxt, model


def test_error_is_a_value_error():
    assert issubclass(pp.CaffeFormatError, ValueError)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_caffemodel(tiny, tmp_path, keep):
    prototxt, model = tiny
    raw = model.read_bytes()
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(pp.CaffeFormatError, match="cut.caffemodel.*(truncated|damaged)"):
        pp.read_caffemodel(cut)
    with pytest.raises(pp.CaffeFormatError):
        convert_caffemodel(prototxt, cut, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_empty_and_text_files_are_not_caffemodels(tiny, tmp_path):
    prototxt, _ = tiny
    empty = tmp_path / "empty.caffemodel"
    empty.write_bytes(b"")
    with pytest.raises(pp.CaffeFormatError, match="empty.caffemodel.*no weights"):
        pp.read_caffemodel(empty)
    with pytest.raises(pp.CaffeFormatError, match="tiny.prototxt"):
        pp.read_caffemodel(prototxt)  # a text prototxt passed as weights


def test_prototxt_syntax_error_names_the_line(tiny):
    prototxt, _ = tiny
    lines = prototxt.read_text().splitlines()
    lines[6] = lines[6].replace("{", "{ num_output 4", 1) if "{" in lines[6] else lines[6] + " }}"
    prototxt.write_text("\n".join(lines) + "\n")
    with pytest.raises(pp.CaffeFormatError, match=r"tiny.prototxt: line 7, column \d+"):
        pp.parse_prototxt(prototxt)


def test_unknown_field_names_the_line(tiny):
    prototxt, _ = tiny
    prototxt.write_text(prototxt.read_text().replace("pad: 1", "padding: 1"))
    with pytest.raises(pp.CaffeFormatError, match=r"line \d+.*padding"):
        pp.load_net(prototxt)


def test_unknown_layer_type(tiny):
    prototxt, model = tiny
    prototxt.write_text(prototxt.read_text().replace('type: "ReLU"', 'type: "Swish"', 1))
    with pytest.raises(
        pp.CaffeFormatError, match=r"layer 'relu1' \(line \d+\): unknown layer type 'Swish'"
    ):
        pp.load_net(prototxt, model)


def test_bottom_that_no_layer_produces(tiny):
    prototxt, model = tiny
    prototxt.write_text(
        prototxt.read_text().replace(
            'bottom: "conv1" top: "conv1_bn"', 'bottom: "conv_1" top: "conv1_bn"'
        )
    )
    with pytest.raises(
        pp.CaffeFormatError, match=r"layer 'conv1_bn'.*bottom 'conv_1'.*did you mean 'conv1'"
    ):
        pp.load_net(prototxt, model)


def test_blob_of_the_wrong_shape(tiny, tmp_path):
    prototxt, model = tiny
    net = caffe_pb2.NetParameter()
    net.ParseFromString(model.read_bytes())
    conv1 = next(layer for layer in net.layer if layer.name == "conv1")
    weight = np.asarray(conv1.blobs[0].data, dtype=np.float32)
    del conv1.blobs[0].shape.dim[:]
    conv1.blobs[0].shape.dim.extend(
        [4, 3, 9]
    )  # 108 values, shape (4, 3, 9) instead of (4, 3, 3, 3)
    conv1.blobs[0].ClearField("data")
    conv1.blobs[0].data.extend(weight)
    bad = tmp_path / "bad_shape.caffemodel"
    bad.write_bytes(net.SerializeToString())
    with pytest.raises(
        pp.CaffeFormatError,
        match=r"bad_shape.caffemodel: blob conv1\[0\] has shape \(4, 3, 9\), "
        r"the net needs \(4, 3, 3, 3\)",
    ):
        pp.load_net(prototxt, bad, phase="train")
    with pytest.raises(pp.CaffeFormatError, match="conv1"):
        convert_caffemodel(prototxt, bad, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_blob_whose_data_does_not_fill_its_shape(tiny, tmp_path):
    _, model = tiny
    net = caffe_pb2.NetParameter()
    net.ParseFromString(model.read_bytes())
    fc = next(layer for layer in net.layer if layer.name == "fc")
    fc.blobs[1].data.append(1.0)
    bad = tmp_path / "extra_value.caffemodel"
    bad.write_bytes(net.SerializeToString())
    with pytest.raises(pp.CaffeFormatError, match=r"layer 'fc' blob 1: blob declares shape \(5,\)"):
        pp.read_caffemodel(bad)


def test_weights_for_a_missing_layer_and_missing_weights(tiny, tmp_path):
    prototxt, model = tiny
    blobs = pp.read_caffemodel(model)
    renamed = dict(blobs)
    renamed["fc_new"] = renamed.pop("fc")
    with pytest.raises(pp.CaffeFormatError, match="no layer named 'fc_new'"):
        pp.write_caffemodel(tmp_path / "x.caffemodel", prototxt, renamed)
    assert not (tmp_path / "x.caffemodel").exists()
    del blobs["fc"]
    pp.write_caffemodel(tmp_path / "nofc.caffemodel", prototxt, blobs, phase="train")
    shapes = {"data": (2, 3, 6, 6), "label": (2,)}  # HDF5Data declares no shapes
    with pytest.raises(pp.CaffeFormatError, match="nofc.caffemodel: has no weights for layer 'fc'"):
        pp.load_net(prototxt, tmp_path / "nofc.caffemodel", phase="train", input_shapes=shapes)
    # without shapes the fc layer cannot even be sized: that is said plainly too
    with pytest.raises(pp.CaffeFormatError, match="layer 'fc'.*input shape is unknown"):
        convert_caffemodel(prototxt, tmp_path / "nofc.caffemodel", tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_cli_prints_one_line_and_exits_2(tiny, tmp_path):
    prototxt, model = tiny
    cut = tmp_path / "cut.caffemodel"
    cut.write_bytes(model.read_bytes()[:100])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "prototxt_port",
            "convert",
            "--prototxt",
            prototxt,
            "--caffemodel",
            cut,
            "--out",
            tmp_path / "out.pt",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and "cut.caffemodel" in result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out.pt").exists()
