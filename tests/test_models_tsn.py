"""TSN wrapper: Caffe reshape order, consensus before softmax, snippets, build_tsn lookups."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tsn.modality import MODALITIES
from tsn.models import BACKBONES, build_backbone, build_tsn
from tsn.models.cross_modality import first_conv
from tsn.models.tsn import TSN


class PixelProbe(nn.Module):
    """Backbone stand-in: each snippet's 'logits' are its channel values at pixel (0, 0)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0, 0]


def videodata_blob(n: int, k: int, length: int, c: int) -> torch.Tensor:
    """Blob whose channel j of video v holds 100*v + j everywhere (Caffe channel order)."""
    channels = torch.arange(k * length * c, dtype=torch.float32)
    values = 100.0 * torch.arange(n, dtype=torch.float32)[:, None] + channels[None, :]
    return values[:, :, None, None].expand(n, k * length * c, 4, 5).contiguous()


def test_reshape_is_video_major_segment_minor_like_reshape_data():
    # flow-like: K=3 segments, L=5 stacked frames, C=2 (x, y) -> 30 channels per video
    model = TSN(PixelProbe(), num_segments=3, new_length=5, channels_per_frame=2)
    x = videodata_blob(2, 3, 5, 2)
    scores = model.segment_scores(x)
    assert scores.shape == (2, 3, 10)
    for v in range(2):
        for k in range(3):
            # snippet (video v, segment k) holds the blob's channels k*10 .. k*10+9
            want = 100.0 * v + torch.arange(k * 10, k * 10 + 10, dtype=torch.float32)
            torch.testing.assert_close(scores[v, k], want)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3), k=st.integers(1, 5), length=st.integers(1, 5), c=st.integers(1, 3))
def test_reshape_order_for_any_layout(n, k, length, c):
    model = TSN(PixelProbe(), num_segments=k, new_length=length, channels_per_frame=c)
    x = videodata_blob(n, k, length, c)
    want = x[:, :, 0, 0].reshape(n, k, length * c)  # blob channel k*L*C + j -> [v, k, j]
    torch.testing.assert_close(model.segment_scores(x), want)
    assert torch.equal(
        want[:, :, 0], 100.0 * torch.arange(n)[:, None] + length * c * torch.arange(k)
    )


def test_forward_applies_consensus_to_the_segment_logits():
    x = videodata_blob(2, 3, 1, 3)
    avg = TSN(PixelProbe(), 3, 1, 3, "avg")(x)
    mx = TSN(PixelProbe(), 3, 1, 3, "max")(x)
    # RGB, K=3: channel c of segment k is 100v + 3k + c -> mean over k is 100v + 3 + c
    torch.testing.assert_close(avg, torch.tensor([[3.0, 4.0, 5.0], [103.0, 104.0, 105.0]]))
    torch.testing.assert_close(mx, torch.tensor([[6.0, 7.0, 8.0], [106.0, 107.0, 108.0]]))


def test_consensus_comes_before_softmax():
    # A real backbone: the video score must be the mean of logits, not of probabilities.
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))
    model = TSN(backbone, num_segments=3).eval()
    x = torch.randn(2, 9, 4, 4)
    per_snippet = model.forward_snippets(x.reshape(6, 3, 4, 4)).reshape(2, 3, 5)
    torch.testing.assert_close(model(x), per_snippet.mean(dim=1))
    assert not torch.allclose(model(x).softmax(-1), per_snippet.softmax(-1).mean(dim=1))


def test_forward_snippets_scores_each_test_image():
    model = TSN(PixelProbe(), num_segments=3, new_length=5, channels_per_frame=2)
    x = videodata_blob(7, 1, 5, 2)  # 7 test-time stacks of 10 channels
    torch.testing.assert_close(model.forward_snippets(x), x[:, :, 0, 0])


@pytest.mark.parametrize("shape", [(2, 10, 4, 4), (2, 9, 4), (30, 4, 4)])
def test_wrong_input_layout_is_a_clear_error(shape):
    model = TSN(PixelProbe(), num_segments=3, new_length=1, channels_per_frame=3)
    with pytest.raises(ValueError, match=r"TSN input must be \(N, K\*L\*C, H, W\) with 9 channels"):
        model(torch.zeros(shape))
    with pytest.raises(ValueError, match=r"\(M, L\*C, H, W\) with 3 channels"):
        model.forward_snippets(torch.zeros(2, 9, 4, 4))


@pytest.mark.parametrize(
    "modality, channels, dropout", [("rgb", 3, 0.8), ("flow", 10, 0.7), ("rgb_diff", 15, 0.8)]
)
def test_build_tsn_follows_the_modality(modality, channels, dropout):
    model = build_tsn("bn_inception", num_classes=51, modality=modality, init="scratch")
    assert first_conv(model).in_channels == channels
    assert model.backbone.fc.out_features == 51
    assert model.backbone.dropout.p == dropout
    assert model.snippet_channels == channels and model.num_segments == 3
    assert model.init_record["in_channels"] == channels
    assert model.init_record["dropout"] == dropout


def test_build_tsn_overrides_and_weighted_consensus():
    model = build_tsn(
        "bn_inception",
        modality="flow",
        num_segments=5,
        consensus="weighted",
        dropout=0.5,
        new_length=3,
        init="scratch",
    )
    assert first_conv(model).in_channels == 6  # 3 stacked (x, y) pairs
    assert model.backbone.dropout.p == 0.5
    assert model.consensus.weight.shape == (5,)
    assert model.init_record["consensus"] == "weighted" and model.init_record["num_segments"] == 5


def test_modality_table_matches_the_release():
    assert (MODALITIES["rgb"].in_channels, MODALITIES["flow"].in_channels) == (3, 10)
    assert (MODALITIES["rgb"].dropout, MODALITIES["flow"].dropout) == (0.8, 0.7)


def test_unknown_names_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'.*bn_inception"):
        build_backbone("resnet50", 3, 101, 0.8)
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'"):
        build_tsn("resnet50", init="scratch")
    with pytest.raises(ValueError, match="unknown consensus 'mean'"):
        build_tsn(consensus="mean", init="scratch")
    with pytest.raises(ValueError, match="unknown modality 'depth'.*rgb, flow"):
        build_tsn(modality="depth", init="scratch")
    with pytest.raises(ValueError, match="unknown init 'random'"):
        build_tsn(init="random")
    with pytest.raises(ValueError, match="unknown partial BN mode 'some'"):
        build_tsn(init="scratch", partial_bn="some")


def test_backbone_table_lists_the_table4_nets():
    assert {"bn_inception", "googlenet", "vgg16", "clarifai"} <= set(BACKBONES)
