"""`tsn test` on CUDA gives the CPU's scores (opt-in: pytest -m gpu; needs a GPU)."""

from __future__ import annotations

import time

import pytest
import torch

from tsn.build import build_test_dataset
from tsn.evaluate import evaluate
from tsn.scores import Protocol

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bn_inception_scores_cpu_equal_cuda(tmp_path):
    from test_evaluate import write_video

    from tsn.models import build_tsn

    torch.manual_seed(0)
    model = build_tsn("bn_inception", num_classes=5, modality="rgb", init="scratch")
    with torch.no_grad():  # larger fc weights than the 0.001 filler, so logits differ visibly
        model.backbone.fc.weight.normal_(0, 0.05)
    recs = [write_video(tmp_path / f"v{i}", 30) for i in range(2)]
    proto = Protocol(num_frames=5, num_crops=10)
    ds = build_test_dataset(recs, "rgb", proto, None)
    cpu = evaluate(model, ds, ["a", "b"], torch.device("cpu"), proto, progress=False)
    cuda_model = model.to("cuda")
    t0 = time.perf_counter()
    gpu = evaluate(cuda_model, ds, ["a", "b"], torch.device("cuda"), proto, progress=False)
    print(f"cuda evaluate: {2 * 50 / (time.perf_counter() - t0):.1f} views/s (incl. decoding)")
    scale = float(abs(cpu.scores).max())
    torch.testing.assert_close(torch.from_numpy(gpu.scores), torch.from_numpy(cpu.scores),
                               rtol=2e-3, atol=2e-3 * scale)
