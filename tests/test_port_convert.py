"""Weight conversion: caffemodel -> .pt -> caffemodel, and the CLI."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

import prototxt_port as pp
from prototxt_port.convert import convert_caffemodel, export_caffemodel, load_weights
from tsn.models.bn_inception import BNInception


def _same_blobs(a, b) -> bool:
    return list(a) == list(b) and all(
        len(a[k]) == len(b[k])
        and all(x.shape == y.shape and x.tobytes() == y.tobytes() for x, y in zip(a[k], b[k]))
        for k in a
    )


def test_round_trip_bn_inception_is_byte_identical(golden_dir, tmp_path):
    folder = golden_dir / "A_forward_flow"
    prototxt = folder / "tsn_bn_inception_flow_deploy.prototxt"
    model_file = folder / "tsn_bn_inception_flow_random.caffemodel"
    meta = convert_caffemodel(prototxt, model_file, tmp_path / "w.pt")
    weights = load_weights(tmp_path / "w.pt")
    assert weights["layout"] == "bn_inception" and meta["missing_layers"] == []
    # the .pt loads strictly into the hand-written model used for training
    model = BNInception(in_channels=10, num_classes=101)
    model.load_state_dict(weights["state_dict"], strict=True)
    export_caffemodel(tmp_path / "w.pt", prototxt, tmp_path / "back.caffemodel")
    assert _same_blobs(
        pp.read_caffemodel(model_file), pp.read_caffemodel(tmp_path / "back.caffemodel")
    )


def test_round_trip_generic_net_via_cli(golden_dir, tmp_path):
    folder = golden_dir / "C_solver_tiny"
    prototxt, model_file = folder / "tiny_train.prototxt", folder / "params_init.caffemodel"
    run = [sys.executable, "-m", "prototxt_port"]
    out = subprocess.run(
        run
        + [
            "convert",
            "--prototxt",
            prototxt,
            "--caffemodel",
            model_file,
            "--out",
            tmp_path / "t.pt",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    # every tensor mapped is logged: 5 parameter layers, 14 blobs
    assert out.stderr.count("=>") == 14, out.stderr
    assert load_weights(tmp_path / "t.pt")["layout"] == "caffe_net"
    subprocess.run(
        run
        + [
            "-q",
            "export",
            "--prototxt",
            prototxt,
            "--weights",
            tmp_path / "t.pt",
            "--out",
            tmp_path / "t.caffemodel",
        ],
        check=True,
    )
    assert _same_blobs(
        pp.read_caffemodel(model_file), pp.read_caffemodel(tmp_path / "t.caffemodel")
    )


def test_init_model_without_fc_converts_when_allowed(golden_dir, tmp_path):
    """ImageNet init models lack fc-action (its 101-way shape cannot come from ImageNet)."""
    folder = golden_dir / "A_forward_rgb"
    prototxt = folder / "tsn_bn_inception_rgb_deploy.prototxt"
    blobs = pp.read_caffemodel(folder / "tsn_bn_inception_rgb_random.caffemodel")
    del blobs["fc-action"]
    pp.write_caffemodel(tmp_path / "init.caffemodel", prototxt, blobs)
    meta = convert_caffemodel(
        prototxt, tmp_path / "init.caffemodel", tmp_path / "init.pt", allow_missing=["fc-action"]
    )
    assert meta["missing_layers"] == ["fc-action"]
    state = load_weights(tmp_path / "init.pt")["state_dict"]
    assert "fc.weight" not in state and len(state) == 414
    model = BNInception(3, 101)
    missing = model.load_state_dict(state, strict=False).missing_keys
    assert missing == ["fc.weight", "fc.bias"]
    assert torch.equal(model.conv1.conv.weight, torch.from_numpy(blobs["conv1/7x7_s2"][0]))
    np.testing.assert_array_equal(
        model.conv1.bn.running_var.numpy(), blobs["conv1/7x7_s2_bn"][3].reshape(-1)
    )


def test_legacy_v1_caffemodel_with_4d_blobs_loads(golden_dir, tmp_path):
    """Old caffemodels: V1 `layers` (field 2) and blobs with num/channels/height/width."""
    from prototxt_port import caffe_pb2

    folder = golden_dir / "C_solver_tiny"
    blobs = pp.read_caffemodel(folder / "params_init.caffemodel")
    legacy = caffe_pb2.NetParameter()
    for name, arrays in blobs.items():
        layer = legacy.layers.add()
        layer.name = name
        for array in arrays:
            blob = layer.blobs.add()
            dims = (1,) * (4 - array.ndim) + array.shape  # legacy blobs are always 4-D
            blob.num, blob.channels, blob.height, blob.width = dims
            blob.data.extend(array.ravel().tolist())
    path = tmp_path / "legacy.caffemodel"
    path.write_bytes(legacy.SerializeToString())
    read = pp.read_caffemodel(path)
    assert list(read) == list(blobs)
    assert read["fc"][0].shape == (1, 1, 5, 64) and read["conv1"][0].shape == (4, 3, 3, 3)
    net = pp.load_net(folder / "tiny_train.prototxt", path, phase="train")
    reference = pp.load_net(
        folder / "tiny_train.prototxt", folder / "params_init.caffemodel", phase="train"
    )
    for mine, theirs in zip(net.caffe_params(), reference.caffe_params()):
        assert torch.equal(mine.tensor, theirs.tensor), mine.name
