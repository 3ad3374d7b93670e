"""prototxt_port on CUDA (opt-in: `make test-port-gpu`): Caffe parity and CPU == CUDA."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import prototxt_port as pp

pytestmark = pytest.mark.gpu

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def exact_fp32():
    """TF32 would change the numbers by ~1e-3: compare in true float32."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@needs_cuda
@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_cuda_forward_matches_caffe(golden_dir, modality):
    folder = golden_dir / f"A_forward_{modality}"
    net = pp.load_net(
        folder / f"tsn_bn_inception_{modality}_deploy.prototxt",
        folder / f"tsn_bn_inception_{modality}_random.caffemodel",
    ).cuda()
    x = torch.from_numpy(np.load(folder / "input.npy")).cuda()
    with torch.no_grad():
        out = net(x)
    for file, blob in [
        ("pool1_3x3_s2", "pool1/3x3_s2"),
        ("inception_5b_output", "inception_5b/output"),
        ("fc_action", "fc-action"),
    ]:
        want = np.load(folder / f"{file}.npy")
        err = np.abs(out[blob].cpu().numpy() - want).max()
        assert err <= 1e-4 * np.abs(want).max(), (blob, err)


@needs_cuda
def test_cuda_backward_equals_cpu(golden_dir):
    """Partial-BN backward on CUDA = on CPU, in float64.

    In float32 the two differ by up to ~3% of the input gradient's maximum: a few ReLU inputs lie
    within rounding of 0, so the rounding of each device decides whether gradient passes there
    (see tests/test_port_golden.py). float64 removes those coin flips and tests the code itself.
    """
    a, b = golden_dir / "A_forward_rgb", golden_dir / "B_backward_rgb_partialbn"
    grads = {}
    for device in ("cpu", "cuda"):
        net = pp.load_net(
            b / "net_partialbn_train.prototxt",
            a / "tsn_bn_inception_rgb_random.caffemodel",
            phase="train",
        ).to(device, torch.float64)
        net.layers["dropout"].forced_mask = torch.from_numpy(np.load(b / "dropout_multiplier.npy"))
        x = torch.from_numpy(np.load(a / "input.npy")).to(device, torch.float64)
        x.requires_grad_(True)
        cot = torch.from_numpy(np.load(b / "cotangent.npy")).to(device, torch.float64)
        (net(x)["fc-action"] * cot).sum().backward()
        bn = net.layers["conv1/7x7_s2_bn"]
        grads[device] = [
            x.grad,
            net.layers["conv1/7x7_s2"].weight.grad,
            bn.weight.grad,
            bn.running_var,
        ]
    names = ["grad input", "grad conv1 weight", "grad conv1 bn scale", "conv1 bn running var"]
    for name, cpu, cuda in zip(names, grads["cpu"], grads["cuda"]):
        err = (cuda.cpu() - cpu).abs().max().item()
        assert err <= 1e-4 * cpu.abs().max().item(), (
            f"{name}: {err:.3g} vs max {cpu.abs().max():.3g}"
        )
