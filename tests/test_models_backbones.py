"""Backbones for Table 4: parameter counts worked out by hand, shapes, dropout placement, LRN."""

from __future__ import annotations

import pytest
import torch

from tsn.models import BACKBONES, build_backbone, build_tsn
from tsn.models.bn_inception import BNInception
from tsn.models.clarifai import ZF, ClarifaiNet
from tsn.models.googlenet import GoogLeNet
from tsn.models.units import caffe_lrn
from tsn.models.vgg import VGG16


def conv(c_in: int, c_out: int, k: int) -> int:
    """Learnable values of a Caffe conv with bias: c_out * c_in * k * k weights + c_out biases."""
    return c_out * c_in * k * k + c_out


def fc(d_in: int, d_out: int) -> int:
    """Learnable values of an InnerProduct with bias."""
    return d_out * d_in + d_out


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def inception_v1(c_in: int, n1: int, r3: int, n3: int, r5: int, n5: int, pp: int) -> int:
    """1x1 + (3x3_reduce, 3x3) + (5x5_reduce, 5x5) + pool_proj of a GoogLeNet block."""
    return (
        conv(c_in, n1, 1)
        + conv(c_in, r3, 1)
        + conv(r3, n3, 3)
        + conv(c_in, r5, 1)
        + conv(r5, n5, 5)
        + conv(c_in, pp, 1)
    )


def test_googlenet_parameter_count_by_hand():
    stem = conv(3, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3)  # 9,472 + 4,160 + 110,784
    assert stem == 124_416
    blocks = [
        inception_v1(192, 64, 96, 128, 16, 32, 32),  # 3a -> 256
        inception_v1(256, 128, 128, 192, 32, 96, 64),  # 3b -> 480
        inception_v1(480, 192, 96, 208, 16, 48, 64),  # 4a -> 512
        inception_v1(512, 160, 112, 224, 24, 64, 64),  # 4b -> 512
        inception_v1(512, 128, 128, 256, 24, 64, 64),  # 4c -> 512
        inception_v1(512, 112, 144, 288, 32, 64, 64),  # 4d -> 528
        inception_v1(528, 256, 160, 320, 32, 128, 128),  # 4e -> 832
        inception_v1(832, 256, 160, 320, 32, 128, 128),  # 5a -> 832
        inception_v1(832, 384, 192, 384, 48, 128, 128),  # 5b -> 1024
    ]
    # 3a: 12,352 + 18,528 + 110,720 + 3,088 + 12,832 + 6,176
    assert blocks[0] == 163_696
    assert count(GoogLeNet(3, 101)) == stem + sum(blocks) + fc(1024, 101)
    # ImageNet head (1000 classes): 6,998,552, the size of bvlc_googlenet without aux heads
    assert stem + sum(blocks) + fc(1024, 1000) == 6_998_552
    assert count(GoogLeNet(3, 1000)) == 6_998_552
    # flow: only conv1 changes, 64 * 7 * 7 * (10 - 3) more weights
    assert count(GoogLeNet(10, 101)) - count(GoogLeNet(3, 101)) == 64 * 49 * 7


@pytest.fixture(scope="module")
def vgg() -> VGG16:
    return VGG16(3, 1000)


def test_vgg16_parameter_count_by_hand(vgg):
    convs = (
        conv(3, 64, 3)  # 1,792
        + conv(64, 64, 3)  # 36,928
        + conv(64, 128, 3)  # 73,856
        + conv(128, 128, 3)  # 147,584
        + conv(128, 256, 3)  # 295,168
        + 2 * conv(256, 256, 3)  # 2 x 590,080
        + conv(256, 512, 3)  # 1,180,160
        + 5 * conv(512, 512, 3)  # 5 x 2,359,808
    )
    assert convs == 14_714_688
    fcs = fc(512 * 7 * 7, 4096) + fc(4096, 4096) + fc(4096, 1000)
    # 138,357,544: the well-known size of ImageNet VGG-16
    assert count(vgg) == convs + fcs == 138_357_544


def test_vgg16_shapes_and_dropout_placement(vgg):
    assert vgg.conv1.conv is vgg.features.conv1_1.conv and vgg.conv1.conv.in_channels == 3
    assert (vgg.drop6.p, vgg.dropout.p) == (0.5, 0.8)  # TSN ratio before the classifier
    with torch.no_grad():  # the conv stack halves 5 times: 32 -> 1
        assert vgg.features(torch.randn(1, 3, 32, 32)).shape == (1, 512, 1, 1)
    # the 224x224 path (7x7x512 -> fc6) runs on the meta device in the TSN test below


def test_clarifai_parameter_count_by_hand():
    convs = conv(3, 96, 7) + conv(96, 256, 5) + conv(256, 512, 3) + 2 * conv(512, 512, 3)
    assert convs == 14_208 + 614_656 + 1_180_160 + 2 * 2_359_808
    fcs = fc(512 * 6 * 6, 4096) + fc(4096, 2048) + fc(2048, 101)  # 6x6 map before full6
    assert count(ClarifaiNet(3, 101)) == convs + fcs
    zf_convs = conv(3, 96, 7) + conv(96, 256, 5) + conv(256, 384, 3) + conv(384, 384, 3)
    zf_convs += conv(384, 256, 3)
    zf = ClarifaiNet(3, 101, spec=ZF)
    assert count(zf) == zf_convs + fc(256 * 6 * 6, 4096) + fc(4096, 2048) + fc(2048, 101)


def test_clarifai_forward_at_224():
    torch.manual_seed(0)
    model = ClarifaiNet(10, 101, dropout=0.7).eval()
    x = torch.randn(1, 10, 224, 224)
    with torch.no_grad():
        assert model.pool1(model.norm1(model.conv1(x))).shape == (1, 96, 55, 55)
        assert model.forward_features(x).shape == (1, 2048)
        assert model(x).shape == (1, 101)
    assert model.dropout.p == 0.7 and model.drop6.p == 0.5
    assert isinstance(ClarifaiNet(norm2=False).norm2, torch.nn.Identity)  # temporal variant


def test_googlenet_forward_at_224():
    torch.manual_seed(0)
    model = GoogLeNet(3, 51, dropout=0.8).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        feats = model.forward_features(x)
        logits = model(x)
    assert feats.shape == (1, 1024) and logits.shape == (1, 51)
    torch.testing.assert_close(logits, model.fc(feats))  # eval: dropout is the identity


def test_bn_inception_counts_match_the_spec():
    # docs/caffe_release.md#parameter-counts (computed from the prototxts)
    assert count(BNInception(3, 101)) == 10_373_765
    assert count(BNInception(10, 101)) == 10_395_717
    assert count(BNInception(3, 51)) == 10_322_515


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_shares_the_interface_and_runs_in_tsn(name):
    net = build_backbone(name, in_channels=10, num_classes=7, dropout=0.7)
    assert net.conv1.conv.in_channels == 10
    assert net.fc.out_features == 7 and net.dropout.p == 0.7
    model = build_tsn(name, num_classes=7, modality="flow", init="scratch").to("meta").eval()
    out = model(torch.empty(2, 30, 224, 224, device="meta"))  # 2 videos x 3 segments
    assert out.shape == (2, 7)


def test_lrn_matches_caffe_across_channels_formula():
    torch.manual_seed(0)
    x = torch.randn(1, 7, 2, 3) * 30
    y = caffe_lrn()(x)
    # Caffe: scale_c = k + alpha / n * sum_{|c'-c| <= 2} x_{c'}^2 (zero padded), k = 1
    sq = torch.nn.functional.pad(x.pow(2), (0, 0, 0, 0, 2, 2))
    window = sum(sq[:, i : i + 7] for i in range(5))
    want = x / (1.0 + 1e-4 / 5 * window).pow(0.75)
    torch.testing.assert_close(y, want)


@pytest.mark.slow
def test_vgg16_real_forward_at_224(vgg):
    vgg.eval()
    with torch.no_grad():
        assert vgg(torch.randn(1, 3, 224, 224)).shape == (1, 1000)
