"""CaffeSGD semantics and the lr_mult / decay_mult policy of native models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tsn.engine.optim import CLIP_MODES, CaffeSGD, ParamSpec, clip_decision, param_specs
from tsn.models import build_tsn
from tsn.models.bn_inception import BNInception


def _quadratic_grad(w: torch.Tensor) -> torch.Tensor:
    """Gradient of 0.5 * ||A w - b||^2 for a fixed A, b (a deterministic toy problem)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, w.numel(), generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    return a.T @ (a @ w - b)


def _run(rule: str, lrs: list[float]) -> list[torch.Tensor]:
    w = nn.Parameter(torch.ones(4, dtype=torch.float64))
    if rule == "caffe":
        opt = CaffeSGD([ParamSpec("w", w, 1.0, 0.0)], momentum=0.9, weight_decay=0.0)
    else:
        opt = torch.optim.SGD([w], lr=lrs[0], momentum=0.9)
    out = []
    for lr in lrs:
        w.grad = _quadratic_grad(w.detach()).clone()
        if rule == "caffe":
            opt.step(lr)
        else:
            for group in opt.param_groups:
                group["lr"] = lr
            opt.step()
            opt.zero_grad()
        out.append(w.detach().clone())
    return out


def test_caffe_momentum_equals_torch_sgd_until_an_lr_drop_then_differs():
    """solver.cpp (docs/caffe_release.md#sgd-update step 7): h carries lr-scaled velocity, torch
    rescales the whole step at once."""
    lrs = [0.01] * 5 + [0.001] * 5
    caffe, torch_sgd = _run("caffe", lrs), _run("torch", lrs)
    for k in range(5):  # constant lr: the two rules are algebraically identical
        assert torch.allclose(caffe[k], torch_sgd[k], atol=1e-12, rtol=0)
    # right after the drop Caffe keeps moving with the old-lr velocity (decaying by 0.9)
    step_caffe = (caffe[5] - caffe[4]).norm()
    step_torch = (torch_sgd[5] - torch_sgd[4]).norm()
    assert step_caffe > 3 * step_torch
    assert (caffe[-1] - torch_sgd[-1]).abs().max() > 1e-4


def _one_hand_step(clip_mode: str):
    """One step of a 2-blob problem (summed gradient of norm 50, iter_size 2, clip 10)."""
    w0 = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    g_sum = np.array([30.0, 40.0, 0.0], dtype=np.float32)  # norm 50
    h0 = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    w = nn.Parameter(torch.from_numpy(w0.copy()))
    b = nn.Parameter(torch.zeros(1))
    b.grad = torch.zeros(1)
    opt = CaffeSGD(
        [ParamSpec("w", w, 2.0, 1.0), ParamSpec("b", b, 2.0, 0.0)],
        momentum=0.9, weight_decay=0.01, clip_gradients=10.0, clip_mode=clip_mode,
    )
    opt.history["w"] = torch.from_numpy(h0.copy())
    w.grad = torch.from_numpy(g_sum.copy())
    info = opt.step(lr=0.1, iter_size=2)
    return w0, g_sum, h0, w, opt, info


def test_one_step_follows_the_caffe_rule_by_hand():
    """caffe_iter_size: clip the SUMMED gradient, then /iter_size, then decay, then
    h = lr*lr_mult*g + m*h (solver.cpp ClipGradients, Normalize, Regularize)."""
    w0, g_sum, h0, w, opt, info = _one_hand_step("caffe_iter_size")
    assert info.clipped and info.grad_norm == pytest.approx(50.0) and info.norm_of == "sum"
    assert info.clip_scale == pytest.approx(0.2)
    g = g_sum * 0.2 / 2 + 0.01 * 1.0 * w0
    h = 0.1 * 2.0 * g + 0.9 * h0
    np.testing.assert_allclose(opt.history["w"].numpy(), h, rtol=1e-6)
    np.testing.assert_allclose(w.detach().numpy(), w0 - h, rtol=1e-6)
    assert w.grad is None  # consumed, ready for the next accumulation


def test_one_step_in_release_mode_clips_the_averaged_gradient_by_hand():
    """release: the averaged gradient (norm 25) meets the clip 10, so the scale is 0.4."""
    w0, g_sum, h0, w, opt, info = _one_hand_step("release")
    assert info.clipped and info.grad_norm == pytest.approx(25.0) and info.norm_of == "mean"
    assert info.clip_scale == pytest.approx(0.4)
    g = g_sum / 2 * 0.4 + 0.01 * 1.0 * w0  # the averaged gradient, clipped to norm 10
    assert np.linalg.norm(g_sum / 2 * 0.4) == pytest.approx(10.0)
    h = 0.1 * 2.0 * g + 0.9 * h0
    np.testing.assert_allclose(opt.history["w"].numpy(), h, rtol=1e-6)
    np.testing.assert_allclose(w.detach().numpy(), w0 - h, rtol=1e-6)


@pytest.mark.parametrize(("avg_norm", "want_scale"), [(14.1, 1.0), (28.3, 20.0 / 28.3)])
def test_release_mode_compares_the_averaged_norm_with_the_clip(avg_norm, want_scale):
    """Issue 12: flow clip 20, one process x iter_size 4. An averaged gradient of norm 14.1 is
    kept whole, as on the release's 4 GPUs (the literal rule would scale it by 20/56.4 = 0.354);
    28.3 is scaled by 0.707."""
    summed = 4 * avg_norm
    info = clip_decision(summed, 20.0, iter_size=4, clip_mode="release")
    assert info.grad_norm == pytest.approx(avg_norm) and info.norm_of == "mean"
    assert info.clip_scale == pytest.approx(want_scale, rel=1e-6)
    assert info.clipped == (want_scale < 1.0)
    literal = clip_decision(summed, 20.0, iter_size=4, clip_mode="caffe_iter_size")
    assert literal.clipped and literal.clip_scale == pytest.approx(20.0 / summed, rel=1e-6)
    # the same through CaffeSGD.step: the update is the averaged gradient times the scale
    w = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    w.grad = torch.tensor([0.6, 0.8], dtype=torch.float64) * summed
    opt = CaffeSGD([ParamSpec("w", w, 1.0, 0.0)], momentum=0.0, weight_decay=0.0,
                   clip_gradients=20.0)
    step = opt.step(lr=1.0, iter_size=4)
    assert step.clip_scale == pytest.approx(want_scale, rel=1e-6)
    assert float(w.detach().norm()) == pytest.approx(min(avg_norm, 20.0), rel=1e-6)


def test_clip_modes_agree_at_iter_size_1_and_unknown_modes_are_refused():
    """The release itself ran iter_size 1: there the two rules are one computation."""
    results = []
    for mode in CLIP_MODES:
        w = nn.Parameter(torch.ones(3))
        w.grad = torch.tensor([3.0, 4.0, 12.0])  # norm 13 > clip 5
        opt = CaffeSGD([ParamSpec("w", w, 1.0, 1.0)], clip_gradients=5.0, clip_mode=mode)
        info = opt.step(lr=0.1, iter_size=1)
        results.append(((info.grad_norm, info.clipped, info.clip_scale), w.detach().clone()))
    assert results[0][0] == results[1][0] and torch.equal(results[0][1], results[1][1])
    with pytest.raises(ValueError, match="clip_mode 'caffe'.*release.*caffe_iter_size"):
        CaffeSGD([], clip_mode="caffe")


def test_clip_disabled_and_below_threshold_leave_the_gradient():
    w = nn.Parameter(torch.zeros(2))
    for clip in (0.0, 100.0):
        opt = CaffeSGD([ParamSpec("w", w, 1.0, 0.0)], momentum=0.0, clip_gradients=clip)
        with torch.no_grad():
            w.zero_()
        w.grad = torch.tensor([3.0, 4.0])
        info = opt.step(lr=1.0)
        assert not info.clipped and info.clip_scale == 1.0
        assert torch.allclose(w.detach(), torch.tensor([-3.0, -4.0]))


def test_lr_mult_zero_blobs_never_move_even_with_decay():
    w = nn.Parameter(torch.ones(3))
    w.grad = torch.ones(3)
    opt = CaffeSGD([ParamSpec("frozen", w, 0.0, 1.0)], weight_decay=1.0)
    opt.step(lr=1.0)
    assert torch.equal(w.detach(), torch.ones(3))
    assert torch.equal(opt.history["frozen"], torch.zeros(3))


def test_bn_inception_multipliers_rgb_and_flow():
    """docs/caffe_release.md#multipliers: conv/fc weight 1/1, bias 2/0; flow conv1 5/10 (decay 1/0);
    frozen BN 0/0."""
    model = BNInception(in_channels=10, num_classes=5)
    model.conv1.bn.set_frozen(False)  # partial BN: only conv1's BN learns
    for modality, w_mult, b_mult in (("rgb", 1.0, 2.0), ("flow", 5.0, 10.0)):
        specs = {s.name: s for s in param_specs(model, modality)}
        assert (specs["conv1.conv.weight"].lr_mult, specs["conv1.conv.weight"].decay_mult) == (
            w_mult, 1.0)
        assert (specs["conv1.conv.bias"].lr_mult, specs["conv1.conv.bias"].decay_mult) == (
            b_mult, 0.0)
        assert (specs["conv1.bn.weight"].lr_mult, specs["conv1.bn.weight"].decay_mult) == (1, 0)
        assert (specs["conv2.bn.bias"].lr_mult, specs["conv2.bn.bias"].decay_mult) == (0, 0)
        assert (specs["conv2.conv.weight"].lr_mult, specs["conv2.conv.bias"].lr_mult) == (1, 2)
        assert (specs["fc.weight"].decay_mult, specs["fc.bias"].lr_mult) == (1, 2)
    # every learnable tensor gets exactly one policy and none is invented
    assert len(param_specs(model, "rgb")) == len(list(model.parameters()))


def test_parameterized_module_without_a_policy_is_refused():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.PReLU())
    with pytest.raises(TypeError, match="PReLU.*no lr_mult/decay_mult policy"):
        param_specs(model)


def test_tiny_model_specs_follow_partial_bn():
    model = build_tsn("tiny", num_classes=4, num_segments=3, partial_bn="release")
    specs = {s.name: (s.lr_mult, s.decay_mult) for s in param_specs(model)}
    assert specs["backbone.conv1.bn.weight"] == (1.0, 0.0)
    assert specs["backbone.conv2.bn.weight"] == (0.0, 0.0)


def test_optimizer_state_round_trip_and_mismatch():
    w = nn.Parameter(torch.ones(2))
    opt = CaffeSGD([ParamSpec("w", w, 1.0, 1.0)])
    w.grad = torch.ones(2)
    opt.step(lr=0.1)
    state = opt.state_dict()
    fresh = CaffeSGD([ParamSpec("w", nn.Parameter(torch.ones(2)), 1.0, 1.0)])
    fresh.load_state_dict(state)
    assert torch.equal(fresh.history["w"], opt.history["w"])
    other = CaffeSGD([ParamSpec("v", nn.Parameter(torch.ones(2)), 1.0, 1.0)])
    with pytest.raises(ValueError, match="missing \\['v'\\]"):
        other.load_state_dict(state)
