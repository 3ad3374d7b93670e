"""Validation during training (Caffe TEST phase): loss, top-1, mean class accuracy."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from prototxt_port.caffe_layers import CaffeBatchNorm
from tsn.engine.validate import validate


class AlwaysClass0(nn.Module):
    """Logits (2, 0, 0) whatever the input, behind an unfrozen BN that must not move."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = CaffeBatchNorm(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.bn(x)  # in train mode this would update the running statistics
        return torch.tensor([2.0, 0.0, 0.0]).expand(x.shape[0], 3)


def test_counts_are_exact_and_the_model_state_is_left_alone():
    labels = torch.tensor([0, 0, 0, 1])  # class 2 is absent: it must not count
    data = TensorDataset(torch.randn(4, 1, 2, 2), labels)
    model = AlwaysClass0().train()
    before = model.bn.running_mean.clone()
    result = validate(model, data, num_classes=3, device=torch.device("cpu"), batch_size=3)
    assert result.videos == 4
    assert result.video_top1 == pytest.approx(0.75)
    assert result.mean_class_acc == pytest.approx(0.5)  # (3/3 + 0/1) / 2 classes present
    p0 = math.exp(2) / (math.exp(2) + 2)
    want = (3 * -math.log(p0) + -math.log((1 - p0) / 2)) / 4
    assert result.loss == pytest.approx(want, rel=1e-6)
    assert model.training and torch.equal(model.bn.running_mean, before)


def test_training_rng_is_not_consumed():
    data = TensorDataset(torch.randn(4, 1, 2, 2), torch.zeros(4, dtype=torch.long))
    torch.manual_seed(3)
    state = torch.get_rng_state()
    validate(AlwaysClass0(), data, 3, torch.device("cpu"), batch_size=2)
    assert torch.equal(torch.get_rng_state(), state)
