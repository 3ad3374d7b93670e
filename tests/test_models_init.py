"""Initialisation: Caffe fillers, converted ImageNet weights, cross-modality, the init record."""

from __future__ import annotations

import logging
import math

import pytest
import torch

from prototxt_port.caffe_layers import CaffeBatchNorm
from tsn.models import build_tsn
from tsn.models.bn_inception import BNInception
from tsn.models.cross_modality import first_conv, first_conv_key, init_first_conv_from_rgb
from tsn.models.googlenet import GoogLeNet
from tsn.models.weights_init import WeightsError, init_scratch


def random_state(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """A recognisable 'ImageNet' state dict: every tensor random (fc 1000-way like ImageNet)."""
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) for k, v in model.state_dict().items()}
    state["fc.weight"] = torch.randn(1000, state["fc.weight"].shape[1], generator=gen)
    state["fc.bias"] = torch.randn(1000, generator=gen)
    return state


@pytest.fixture(scope="module")
def rgb_imagenet() -> dict[str, torch.Tensor]:
    return random_state(BNInception(3, 101))


def test_cross_modality_weight_is_the_channel_mean_replicated_by_hand():
    # out=2, 3 input channels, 1x2 kernel
    rgb = torch.tensor(
        [[[[1.0, 2.0]], [[4.0, 5.0]], [[7.0, -1.0]]], [[[0.0, 3.0]], [[3.0, 3.0]], [[-3.0, 0.0]]]]
    )
    flow = init_first_conv_from_rgb(rgb, 10)
    assert flow.shape == (2, 10, 1, 2)
    for c in range(10):
        torch.testing.assert_close(flow[0, c], torch.tensor([[4.0, 2.0]]))
        torch.testing.assert_close(flow[1, c], torch.tensor([[0.0, 2.0]]))


def test_cross_modality_rejects_a_non_rgb_kernel():
    with pytest.raises(ValueError, match=r"shape \(out, 3, k, k\)"):
        init_first_conv_from_rgb(torch.zeros(64, 10, 7, 7), 10)


@pytest.mark.parametrize("modality, channels", [("flow", 10), ("rgb_diff", 15)])
def test_build_tsn_cross_modality_from_rgb_imagenet(rgb_imagenet, modality, channels):
    model = build_tsn("bn_inception", modality=modality, init_weights=rgb_imagenet)
    net = model.backbone
    want = rgb_imagenet["conv1.conv.weight"].mean(dim=1, keepdim=True).expand(-1, channels, -1, -1)
    torch.testing.assert_close(net.conv1.conv.weight.detach(), want)
    torch.testing.assert_close(net.conv1.conv.bias.detach(), rgb_imagenet["conv1.conv.bias"])
    # every other tensor is copied unchanged, BN statistics included
    for key in (
        "blocks.inception_5b.pool_proj.conv.weight",
        "conv2.bn.running_var",
        "conv1.bn.bias",
    ):
        torch.testing.assert_close(net.state_dict()[key], rgb_imagenet[key])
    assert model.init_record["init"] == "imagenet"
    assert model.init_record["cross_modality"] is True
    assert model.init_record["source"] == "<state_dict>"


def test_classifier_keeps_its_filler_not_the_imagenet_fc(rgb_imagenet):
    torch.manual_seed(0)
    net = build_tsn("bn_inception", modality="rgb", init_weights=rgb_imagenet).backbone
    assert net.fc.weight.shape == (101, 1024)
    assert torch.all(net.fc.bias == 0)
    std = net.fc.weight.std().item()  # fc-action filler: gaussian std 0.001
    assert 0.0009 < std < 0.0011, std


def test_rgb_weights_into_rgb_net_are_copied_without_cross_modality(rgb_imagenet):
    model = build_tsn("bn_inception", modality="rgb", init_weights=rgb_imagenet)
    w = model.backbone.conv1.conv.weight.detach()
    torch.testing.assert_close(w, rgb_imagenet["conv1.conv.weight"])
    assert model.init_record["cross_modality"] is False


def test_flow_weights_are_loaded_as_they_are():
    # The release's flow init model already holds a 10-channel conv1 (get_init_models.sh,
    # docs/caffe_release.md#released-models).
    flow_init = random_state(BNInception(10, 101), seed=3)
    model = build_tsn("bn_inception", modality="flow", init_weights=flow_init)
    w = model.backbone.conv1.conv.weight.detach()
    torch.testing.assert_close(w, flow_init["conv1.conv.weight"])
    assert model.init_record["cross_modality"] is False


def test_cross_modality_works_for_other_backbones():
    rgb = random_state(GoogLeNet(3, 101), seed=5)
    model = build_tsn("googlenet", modality="flow", init_weights=rgb)
    conv = first_conv(model)
    assert first_conv_key(model.backbone) == "conv1.conv.weight"
    torch.testing.assert_close(
        conv.weight.detach(), rgb["conv1.conv.weight"].mean(1, keepdim=True).expand(-1, 10, -1, -1)
    )
    assert (
        model.init_record["cross_modality"] is True and model.init_record["frozen_bn_layers"] == 0
    )


def test_converted_file_is_read_and_named_in_the_record(tmp_path, rgb_imagenet):
    path = tmp_path / "bn_inception.imagenet.pt"
    payload = {
        "format": "tsn-weights/1",
        "layout": "bn_inception",
        "state_dict": rgb_imagenet,
        "meta": {"sha256": "0123abcd"},
    }
    torch.save(payload, path)
    model = build_tsn("bn_inception", modality="flow", init_weights=path)
    assert model.init_record["source"] == str(path)
    assert model.init_record["sha256"] == "0123abcd"
    assert model.init_record["cross_modality"] is True


def test_imagenet_without_weights_falls_back_to_scratch_and_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        model = build_tsn("bn_inception", modality="rgb")
    record = model.init_record
    assert (record["init"], record["requested"], record["source"]) == ("scratch", "imagenet", None)
    assert "no ImageNet weights" in record["reason"]
    assert any("from scratch" in r.getMessage() for r in caplog.records)


def test_scratch_uses_the_caffe_fillers():
    torch.manual_seed(0)
    model = BNInception(10, 101)
    with torch.no_grad():  # make sure every value is overwritten
        for p in model.parameters():
            p.fill_(7.0)
        for b in model.buffers():
            b.fill_(7.0)
    init_scratch(model)
    conv = model.blocks["inception_3a"].b3x3.conv  # fan_in 64 * 3 * 3
    bound = math.sqrt(3.0 / (64 * 9))  # Caffe xavier: U(+-sqrt(3 / fan_in))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.95 * bound
    assert model.conv1.conv.weight.abs().max() <= math.sqrt(3.0 / (10 * 49))
    assert torch.all(conv.bias == 0.2)  # bias_filler constant 0.2
    assert torch.all(model.fc.bias == 0) and 0.0009 < model.fc.weight.std().item() < 0.0011
    for bn in (m for m in model.modules() if isinstance(m, CaffeBatchNorm)):
        assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
        assert torch.all(bn.running_mean == 0) and torch.all(bn.running_var == 1)


def test_scratch_record():
    record = build_tsn("bn_inception", modality="flow", init="scratch").init_record
    assert (record["init"], record["requested"], record["cross_modality"]) == (
        "scratch",
        "scratch",
        False,
    )


def test_bad_weights_give_one_clear_error(tmp_path, rgb_imagenet):
    with pytest.raises(WeightsError, match="not found.*init='scratch'"):
        build_tsn(init_weights=tmp_path / "missing.pt")
    caffemodel = tmp_path / "bn_inception_rgb_init.caffemodel"
    caffemodel.write_bytes(b"\x00")
    with pytest.raises(WeightsError, match="python -m prototxt_port convert"):
        build_tsn(init_weights=caffemodel)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match="garbage.pt: not a readable PyTorch weights file"):
        build_tsn(init_weights=garbage)
    partial = {k: v for k, v in rgb_imagenet.items() if not k.startswith("blocks.inception_5b")}
    with pytest.raises(WeightsError, match=r"missing \d+ \['blocks.inception_5b"):
        build_tsn(init_weights=partial)
    wrong = dict(rgb_imagenet, **{"conv2.conv.weight": torch.zeros(192, 64, 5, 5)})
    with pytest.raises(WeightsError, match=r"conv2.conv.weight has shape \(192, 64, 5, 5\)"):
        build_tsn(init_weights=wrong)
    with pytest.raises(WeightsError, match="'caffe_net' layout"):
        build_tsn(init_weights={"layout": "caffe_net", "state_dict": {}})
    with pytest.raises(ValueError, match="init='scratch' was given together with weights"):
        build_tsn(init="scratch", init_weights=rgb_imagenet)


def test_cross_modality_init_insists_on_cross_modality(rgb_imagenet):
    model = build_tsn(
        "bn_inception", modality="flow", init="cross_modality", init_weights=rgb_imagenet
    )
    record = model.init_record
    assert (record["init"], record["requested"], record["cross_modality"]) == (
        "imagenet",
        "cross_modality",
        True,
    )
    with pytest.raises(WeightsError, match="init='cross_modality' needs RGB weights"):
        build_tsn("bn_inception", modality="rgb", init="cross_modality", init_weights=rgb_imagenet)
    fallback = build_tsn("bn_inception", modality="flow", init="cross_modality").init_record
    assert (fallback["init"], fallback["requested"]) == ("scratch", "cross_modality")
