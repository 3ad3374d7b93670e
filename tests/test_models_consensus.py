"""Segmental consensus: avg / max / weighted computed by hand (tsn.models.consensus)."""

from __future__ import annotations

import pytest
import torch

from tsn.models.consensus import WeightedConsensus, build_consensus

# N=2 videos, K=3 segments, C=2 classes
SCORES = torch.tensor(
    [
        [[1.0, -2.0], [4.0, 0.0], [-2.0, 5.0]],
        [[0.5, 0.5], [1.5, -1.5], [4.0, 3.0]],
    ]
)


def test_avg_is_the_mean_of_the_segment_logits():
    # video 0: (1+4-2)/3 = 1, (-2+0+5)/3 = 1; video 1: (0.5+1.5+4)/3 = 2, (0.5-1.5+3)/3 = 2/3
    want = torch.tensor([[1.0, 1.0], [2.0, 2.0 / 3.0]])
    torch.testing.assert_close(build_consensus("avg", 3)(SCORES), want)


def test_max_is_the_per_class_maximum_over_segments():
    want = torch.tensor([[4.0, 5.0], [4.0, 3.0]])
    torch.testing.assert_close(build_consensus("max", 3)(SCORES), want)


def test_max_sends_the_gradient_to_the_argmax_segment_only():
    x = SCORES.clone().requires_grad_(True)
    build_consensus("max", 3)(x).sum().backward()
    want = torch.zeros_like(SCORES)
    want[0, 1, 0] = want[0, 2, 1] = want[1, 2, 0] = want[1, 2, 1] = 1.0
    torch.testing.assert_close(x.grad, want)


def test_weighted_starts_uniform_equal_to_avg():
    weighted = build_consensus("weighted", 3)
    torch.testing.assert_close(weighted.weight.detach(), torch.full((3,), 1.0 / 3.0))
    torch.testing.assert_close(weighted(SCORES), build_consensus("avg", 3)(SCORES))


def test_weighted_uses_its_learned_weights_and_gets_their_gradient():
    weighted = WeightedConsensus(3)
    with torch.no_grad():
        weighted.weight.copy_(torch.tensor([0.5, 0.25, 2.0]))
    out = weighted(SCORES)
    # video 0 class 0: 0.5*1 + 0.25*4 + 2*(-2) = -2.5; class 1: 0.5*(-2) + 0 + 2*5 = 9
    # video 1 class 0: 0.25 + 0.375 + 8 = 8.625; class 1: 0.25 - 0.375 + 6 = 5.875
    torch.testing.assert_close(out, torch.tensor([[-2.5, 9.0], [8.625, 5.875]]))
    out.sum().backward()
    # d(sum)/dw_k = sum over videos and classes of the segment-k scores
    torch.testing.assert_close(weighted.weight.grad, torch.tensor([0.0, 4.0, 10.0]))


def test_weighted_rejects_a_different_number_of_segments():
    with pytest.raises(ValueError, match="built for 3 segments"):
        WeightedConsensus(3)(torch.zeros(1, 5, 2))


def test_unknown_consensus_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown consensus 'mean'.*avg, max, weighted"):
        build_consensus("mean", 3)
