"""Models on CUDA (opt-in: pytest -m gpu): same code, same numbers, partial BN kept."""

from __future__ import annotations

import pytest
import torch

from tsn.models import BACKBONES, build_tsn
from tsn.models.bn_inception import BNInception
from tsn.models.partial_bn import batch_norms

pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():  # collected everywhere, run only where a GPU exists
    pytestmark = [pytest.mark.gpu, pytest.mark.skip(reason="needs a CUDA device")]


@pytest.fixture
def fp32_cuda():
    """Full-precision CUDA math for comparisons with the CPU (TF32 would cost ~1e-3)."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield torch.device("cuda")
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


def test_flow_tsn_trains_on_cuda_with_release_partial_bn(fp32_cuda):
    torch.manual_seed(0)
    rgb = {k: torch.randn_like(v) * 0.05 for k, v in BNInception(3, 101).state_dict().items()}
    for key in rgb:
        if key.endswith("running_var"):
            rgb[key] = rgb[key].abs() + 1.0
    model = build_tsn("bn_inception", modality="flow", init_weights=rgb).to(fp32_cuda)
    assert model.init_record["cross_modality"] is True
    bns = batch_norms(model)
    before = [(bn.running_mean.clone(), bn.weight.detach().clone()) for bn in bns]
    model.train()
    x = torch.randn(4, 30, 224, 224, device=fp32_cuda)
    loss = torch.nn.functional.cross_entropy(model(x), torch.arange(4, device=fp32_cuda))
    loss.backward()
    assert torch.isfinite(loss)
    assert not torch.equal(bns[0].running_mean, before[0][0])  # conv1 BN: batch statistics
    assert all(torch.equal(bn.running_mean, b[0]) for bn, b in zip(bns[1:], before[1:]))
    assert bns[0].weight.grad is not None and all(bn.weight.grad is None for bn in bns[1:])


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_cuda_matches_cpu(fp32_cuda, name):
    torch.manual_seed(0)
    model = build_tsn(name, num_classes=11, modality="rgb", init="scratch").eval()
    x = torch.randn(2, 9, 224, 224)
    with torch.no_grad():
        want = model(x)
        got = model.to(fp32_cuda)(x.to(fp32_cuda)).cpu()
    assert got.shape == (2, 11)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
