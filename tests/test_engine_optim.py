"""CaffeSGD semantics and the lr_mult / decay_mult policy of native models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tsn.engine.optim import CaffeSGD, ParamSpec, param_specs
from tsn.engine.smoke import TinyTSN
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
    """spec 4.6 step 7: h carries lr-scaled velocity, torch rescales the whole step at once."""
    lrs = [0.01] * 5 + [0.001] * 5
    caffe, torch_sgd = _run("caffe", lrs), _run("torch", lrs)
    for k in range(5):  # constant lr: the two rules are algebraically identical
        assert torch.allclose(caffe[k], torch_sgd[k], atol=1e-12, rtol=0)
    # right after the drop Caffe keeps moving with the old-lr velocity (decaying by 0.9)
    step_caffe = (caffe[5] - caffe[4]).norm()
    step_torch = (torch_sgd[5] - torch_sgd[4]).norm()
    assert step_caffe > 3 * step_torch
    assert (caffe[-1] - torch_sgd[-1]).abs().max() > 1e-4


def test_one_step_follows_the_caffe_rule_by_hand():
    """clip the SUMMED gradient, then /iter_size, then decay, then h = lr*lr_mult*g + m*h."""
    w0 = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    g_sum = np.array([30.0, 40.0, 0.0], dtype=np.float32)  # norm 50
    h0 = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    w = nn.Parameter(torch.from_numpy(w0.copy()))
    b = nn.Parameter(torch.zeros(1))
    b.grad = torch.zeros(1)
    opt = CaffeSGD(
        [ParamSpec("w", w, 2.0, 1.0), ParamSpec("b", b, 2.0, 0.0)],
        momentum=0.9, weight_decay=0.01, clip_gradients=10.0,
    )
    opt.history["w"] = torch.from_numpy(h0.copy())
    w.grad = torch.from_numpy(g_sum.copy())
    info = opt.step(lr=0.1, iter_size=2)
    assert info.clipped and info.grad_norm == pytest.approx(50.0)
    assert info.clip_scale == pytest.approx(0.2)
    g = g_sum * 0.2 / 2 + 0.01 * 1.0 * w0
    h = 0.1 * 2.0 * g + 0.9 * h0
    np.testing.assert_allclose(opt.history["w"].numpy(), h, rtol=1e-6)
    np.testing.assert_allclose(w.detach().numpy(), w0 - h, rtol=1e-6)
    assert w.grad is None  # consumed, ready for the next accumulation


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
    """spec 3.3: conv/fc weight 1/1, bias 2/0; flow conv1 5/10 (decay 1/0); frozen BN 0/0."""
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
    model = TinyTSN(3, 3, 4, partial_bn="release")
    specs = {s.name: (s.lr_mult, s.decay_mult) for s in param_specs(model)}
    assert specs["bn1.weight"] == (1.0, 0.0) and specs["bn2.weight"] == (0.0, 0.0)


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
