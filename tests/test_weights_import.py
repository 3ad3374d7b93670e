"""Cadene pretrainedmodels and tsn-pytorch .pth imports: key mapping by rule, every key and
shape checked against the Caffe BN-Inception layout, weights_only loading. Files are built here
with torch.save (no network)."""

from __future__ import annotations

import functools
import pickle

import pytest
import torch

from prototxt_port.convert import load_weights
from tsn.models import build_tsn
from tsn.models.bn_inception import BNInception
from tsn.weights import WeightsError
from tsn.weights.bn_inception_layout import bn_inception_to_blobs, caffe_blob_map
from tsn.weights.cli import add_arguments, run
from tsn.weights.importers import caffe_to_port_key, import_cadene, import_tsn_pytorch


@functools.cache  # building BN-Inception costs seconds; tensors are never mutated
def reference_state(in_channels=3, num_classes=101, seed=0):
    torch.manual_seed(seed)
    model = BNInception(in_channels, num_classes)
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    for key in state:  # variances must stay positive, as in a real model
        if key.endswith("running_var"):
            state[key] = state[key].abs() + 0.1
    return model, state


def port_state(model, state, classifier, prefix="", fc=None, bn_shape_1c=False):
    """Keys named like the ports: Caffe layer with '/' -> '_' (+ attribute)."""
    out = {}
    for layer, index, key in caffe_blob_map(model):
        if layer == "fc-action":
            if fc is not None:
                out[f"{prefix}{classifier}.{('weight', 'bias')[index]}"] = fc[index]
            continue
        value = state[key]
        if bn_shape_1c and layer.endswith("_bn"):
            value = value.reshape(1, -1)
        out[prefix + caffe_to_port_key(layer, index)] = value
    return out


def test_mapping_rule_on_known_names():
    assert caffe_to_port_key("conv1/7x7_s2", 0) == "conv1_7x7_s2.weight"
    assert caffe_to_port_key("conv1/7x7_s2_bn", 3) == "conv1_7x7_s2_bn.running_var"
    assert caffe_to_port_key("inception_3a/double_3x3_1_bn", 2) == \
        "inception_3a_double_3x3_1_bn.running_mean"
    assert caffe_to_port_key("inception_5b/pool_proj", 1) == "inception_5b_pool_proj.bias"


def test_cadene_import_maps_every_tensor_and_drops_the_imagenet_classifier(tmp_path):
    model, state = reference_state()
    fc = (torch.randn(1000, 1024), torch.randn(1000))
    src = port_state(model, state, "last_linear", fc=fc)
    src["conv1_7x7_s2_bn.num_batches_tracked"] = torch.tensor(5)  # PyTorch bookkeeping
    torch.save(src, tmp_path / "bn_inception-52deb4733.pth")
    meta = import_cadene(tmp_path / "bn_inception-52deb4733.pth", tmp_path / "c.pt")
    assert meta["dropped"] == ["last_linear.weight", "last_linear.bias"]
    assert meta["missing_layers"] == ["fc-action"]
    got = load_weights(tmp_path / "c.pt")
    assert got["layout"] == "bn_inception"
    expected = {k: v for k, v in state.items() if not k.startswith("fc.")}
    assert set(got["state_dict"]) == set(expected)
    for key, value in expected.items():
        assert torch.equal(got["state_dict"][key], value), key
    # Caffe layout check: BN blobs come back as (1, C) under the Caffe layer names
    blobs = bn_inception_to_blobs(got["state_dict"])
    assert blobs["inception_3a/1x1_bn"][3].shape == (1, 64)
    # and it initialises a TSN like a converted Caffe init model (fc keeps its filler)
    tsn = build_tsn(init="imagenet", init_weights=str(tmp_path / "c.pt"))
    assert torch.equal(tsn.backbone.conv1.conv.weight, state["conv1.conv.weight"])


def test_tsn_pytorch_checkpoint_with_new_fc_and_flow_conv1(tmp_path):
    model, state = reference_state(in_channels=10, num_classes=51, seed=1)
    src = port_state(model, state, "new_fc", prefix="module.base_model.",
                     fc=(state["fc.weight"], state["fc.bias"]))
    src = {k.replace("module.base_model.new_fc", "module.new_fc"): v for k, v in src.items()}
    torch.save({"epoch": 80, "arch": "BNInception", "state_dict": src, "best_prec1": 54.9},
               tmp_path / "hmdb51_flow_checkpoint.pth.tar")
    meta = import_tsn_pytorch(tmp_path / "hmdb51_flow_checkpoint.pth.tar", tmp_path / "t.pt")
    assert meta["missing_layers"] == [] and meta["dropped"] == []
    got = load_weights(tmp_path / "t.pt")["state_dict"]
    assert got["conv1.conv.weight"].shape == (64, 10, 7, 7) and got["fc.weight"].shape == (51, 1024)
    for key, value in state.items():
        assert torch.equal(got[key], value), key
    net = BNInception(10, 51)
    net.load_state_dict(got, strict=True)


def test_tsn_pytorch_imagenet_file_with_1xC_bn_blobs(tmp_path):
    model, state = reference_state()
    src = port_state(model, state, "fc", fc=(torch.randn(1000, 1024), torch.randn(1000)),
                     bn_shape_1c=True)
    torch.save(src, tmp_path / "bn_inception-9f5701afb96c8044.pth")
    meta = import_tsn_pytorch(tmp_path / "bn_inception-9f5701afb96c8044.pth", tmp_path / "i.pt")
    assert meta["dropped"] == ["fc.weight", "fc.bias"]
    got = load_weights(tmp_path / "i.pt")["state_dict"]
    assert got["conv1.bn.running_var"].shape == (64,)
    assert torch.equal(got["conv1.bn.running_var"], state["conv1.bn.running_var"])


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("inception_4e_3x3_bn.running_var"),
     "1 missing (first: inception_4e_3x3_bn.running_var)"),
    (lambda s: s.update({"aux_classifier.weight": torch.zeros(3)}),
     "1 without a Caffe blob (first: aux_classifier.weight)"),
    (lambda s: s.update({"inception_3a_1x1.weight": torch.zeros(64, 192, 3, 3)}),
     "inception_3a_1x1.weight (64, 192, 3, 3) != (64, 192, 1, 1) (Caffe inception_3a/1x1[0])"),
    (lambda s: s.update({"conv1_7x7_s2.weight": s["conv1_7x7_s2.weight"].tolist()}),
     "'conv1_7x7_s2.weight' is not a tensor"),
])
def test_bad_port_file_fails_with_one_clear_error(tmp_path, damage, message):
    model, state = reference_state()
    src = port_state(model, state, "last_linear")
    damage(src)
    torch.save(src, tmp_path / "bad.pth")
    with pytest.raises(WeightsError) as info:
        import_cadene(tmp_path / "bad.pth", tmp_path / "bad.pt")
    assert message in str(info.value) and "bad.pth" in str(info.value)
    assert not (tmp_path / "bad.pt").exists()


class Payload:
    """An object whose unpickling would run code: weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_files_needing_code_are_refused(tmp_path, capsys):
    with open(tmp_path / "evil.pth", "wb") as handle:
        pickle.dump({"conv1_7x7_s2.weight": Payload()}, handle, protocol=2)
    with pytest.raises(WeightsError, match="not a loadable weights-only PyTorch file"):
        import_tsn_pytorch(tmp_path / "evil.pth", tmp_path / "evil.pt")
    assert "this must never run" not in capsys.readouterr().out
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(WeightsError, match="empty.pth"):
        import_cadene(tmp_path / "empty.pth", tmp_path / "e.pt")


def test_cli_import_reports_errors_in_one_line(tmp_path, capsys):
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["import-cadene", str(tmp_path / "missing.pth"),
                              "--out", str(tmp_path / "o.pt")])
    assert run(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.pth: file not found" in err[0]
