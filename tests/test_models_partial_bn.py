"""Partial BN: release (stats + scale/shift frozen), paper (stats only), none, all."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from prototxt_port.caffe_layers import CaffeBatchNorm
from tsn.models import build_tsn
from tsn.models.bn_inception import ConvBNReLU
from tsn.models.partial_bn import apply_partial_bn, batch_norms
from tsn.models.tsn import TSN


class TinyBNNet(nn.Module):
    """Three Conv+BN+ReLU units, global pool, fc: a BN-Inception in miniature."""

    def __init__(self, in_channels: int = 3, num_classes: int = 5) -> None:
        super().__init__()
        self.conv1 = ConvBNReLU(in_channels, 4, 3, 1, 1)
        self.conv2 = ConvBNReLU(4, 6, 3, 1, 1)
        self.conv3 = ConvBNReLU(6, 8, 1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3(self.conv2(self.conv1(x)))
        return self.fc(x.mean(dim=(2, 3)))


def snapshot(bns: list[CaffeBatchNorm]) -> list[dict[str, torch.Tensor]]:
    keys = ("running_mean", "running_var", "weight", "bias")
    return [{k: getattr(bn, k).detach().clone() for k in keys} for bn in bns]


def train_step(mode: str) -> tuple[list[CaffeBatchNorm], list[dict], list[dict]]:
    """Build, apply `mode`, run one SGD step in train mode; (bns, before, after)."""
    torch.manual_seed(0)
    model = TSN(TinyBNNet(), num_segments=3)
    apply_partial_bn(model, mode)
    model.eval()
    model.train()  # the choice must survive train()/eval() toggles
    bns = batch_norms(model)
    before = snapshot(bns)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.5)
    x = torch.randn(4, 9, 6, 6) * 2 + 1  # stats far from the init (mean 0, var 1)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    opt.step()
    return bns, before, snapshot(bns)


def changed(before: dict, after: dict, keys: tuple[str, ...]) -> list[bool]:
    return [not torch.equal(before[k], after[k]) for k in keys]


STATS, AFFINE = ("running_mean", "running_var"), ("weight", "bias")


def test_release_only_the_first_bn_moves_and_trains():
    bns, before, after = train_step("release")
    assert [bn.frozen for bn in bns] == [False, True, True]
    assert all(changed(before[0], after[0], STATS + AFFINE))
    for i in (1, 2):
        assert not any(changed(before[i], after[i], STATS + AFFINE)), f"BN {i} moved"
        assert not bns[i].weight.requires_grad and not bns[i].bias.requires_grad
        assert bns[i].weight.grad is None


def test_paper_freezes_statistics_but_trains_scale_and_shift():
    bns, before, after = train_step("paper")
    assert [bn.frozen for bn in bns] == [False, True, True]
    assert all(changed(before[0], after[0], STATS + AFFINE))
    for i in (1, 2):
        assert not any(changed(before[i], after[i], STATS)), f"BN {i} statistics moved"
        assert all(changed(before[i], after[i], AFFINE)), f"BN {i} scale/shift did not train"


def test_none_uses_batch_statistics_everywhere():
    bns, before, after = train_step("none")
    assert not any(bn.frozen for bn in bns)
    for i in range(3):
        assert all(changed(before[i], after[i], STATS + AFFINE))


def test_all_freezes_every_bn():
    bns, before, after = train_step("all")
    assert all(bn.frozen for bn in bns)
    for i in range(3):
        assert not any(changed(before[i], after[i], STATS + AFFINE))


def test_frozen_bn_uses_running_statistics_in_train_mode():
    torch.manual_seed(1)
    model = TinyBNNet()
    apply_partial_bn(model, "all")
    x = torch.randn(2, 3, 5, 5)
    with torch.no_grad():
        train_out = model.train()(x)
        eval_out = model.eval()(x)
    torch.testing.assert_close(train_out, eval_out)


def test_bn_inception_release_freezes_68_of_69_and_leaves_conv1_bn():
    model = build_tsn("bn_inception", modality="flow", init="scratch")
    bns = batch_norms(model)
    assert len(bns) == 69 and model.init_record["frozen_bn_layers"] == 68
    assert bns[0] is model.backbone.conv1.bn and not bns[0].frozen
    assert all(bn.frozen for bn in bns[1:])
    # docs/caffe_release.md#parameter-counts: conv W+b 10,272,160 (flow) + conv1 BN scale/shift 2*64
    # + fc 1024*101+101
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == 10_272_160 + 128 + 103_525


def test_models_without_bn_are_left_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    assert apply_partial_bn(model, "release") == 0


def test_torch_batchnorm_and_unknown_modes_are_refused():
    with pytest.raises(ValueError, match="found torch BatchNorm"):
        apply_partial_bn(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    with pytest.raises(ValueError, match="unknown partial BN mode 'paper_v2'"):
        apply_partial_bn(TinyBNNet(), "paper_v2")


def test_build_tsn_release_partial_bn_matches_caffe_train_pass(golden_dir):
    """build_tsn + converted weights + partial BN 'release' == the Caffe fork's TRAIN pass.

    Checked: the forward with conv1's BN on batch statistics, its moving-average update, the fc
    gradients, and which BN layers get gradients. The gradients below conv1's BN are left to
    tests/test_port_golden.py (they currently differ from Caffe for the second sample of the
    batch in both B fixtures, the prototxt-built net included: a port issue, not a TSN one).
    """
    from prototxt_port import read_caffemodel
    from tsn.weights.bn_inception_layout import blobs_to_bn_inception

    folder = golden_dir / "B_backward_rgb_partialbn"
    state = blobs_to_bn_inception(
        read_caffemodel(golden_dir / "A_forward_rgb" / "tsn_bn_inception_rgb_random.caffemodel")
    )
    model = build_tsn("bn_inception", modality="rgb", num_segments=1, init_weights=state)
    assert model.init_record["init"] == "imagenet" and not model.init_record["cross_modality"]
    net = model.backbone
    with torch.no_grad():  # fc-action is never taken from init weights; this test needs Caffe's
        net.fc.weight.copy_(state["fc.weight"])
        net.fc.bias.copy_(state["fc.bias"])
    mask = np.load(folder / "dropout_multiplier.npy")  # Caffe's own dropout mask * scale
    net.dropout.forced_mask = torch.from_numpy(mask).flatten(1)
    model.train()
    x = torch.from_numpy(np.load(golden_dir / "A_forward_rgb" / "input.npy"))
    out = model(x)  # K = 1: the consensus is the identity
    (out * torch.from_numpy(np.load(folder / "cotangent.npy"))).sum().backward()

    def close(got: torch.Tensor, file: str) -> None:
        want = np.load(folder / f"{file}.npy")
        got = got.detach().reshape(want.shape).numpy()
        bound = 1e-4 * float(np.abs(want).max())  # caffe_golden README tolerance
        assert float(np.abs(got - want).max()) <= bound, file

    close(out, "fc_action")  # uses conv1 BN batch statistics: wrong if conv1 BN were frozen
    close(net.fc.weight.grad, "grad_fc_weight")
    close(net.fc.bias.grad, "grad_fc_bias")
    close(net.conv1.bn.running_mean, "conv1_bn_running_mean_after")
    close(net.conv1.bn.running_var, "conv1_bn_running_var_after")
    assert net.conv1.bn.weight.grad is not None and net.conv1.bn.weight.grad.abs().max() > 0
    assert net.conv2.bn.weight.grad is None  # frozen BN: no scale/shift gradient, as Caffe
    assert torch.equal(net.conv2.bn.running_mean, state["conv2.bn.running_mean"])
