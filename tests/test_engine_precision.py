"""tsn.engine.precision: IEEE float32 unless asked, bf16 autocast as a named deviation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from tsn.config import ConfigError, load_experiment
from tsn.engine import precision
from tsn.evaluate import evaluate
from tsn.models import build_tsn
from tsn.scores import Protocol


@pytest.fixture(autouse=True)
def restore_float32_mode():
    """The flags are process wide: leave them as the test found them."""
    saved = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
             torch.backends.cudnn.rnn.fp32_precision)
    yield
    (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision,
     torch.backends.cudnn.rnn.fp32_precision) = saved


def flags() -> tuple[str, str]:
    return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision


def test_pytorch_defaults_to_tf32_convolutions_and_fp32_turns_them_off():
    # the reason this module exists: without it cuDNN convolutions would run in TF32
    precision.set_float32_mode("tf32")
    assert flags() == ("tf32", "tf32")
    precision.set_float32_mode("fp32")
    assert flags() == ("ieee", "ieee")
    precision.set_float32_mode("bf16")  # autocast does the bf16 part; float32 stays IEEE
    assert flags() == ("ieee", "ieee")


def test_names_are_checked_everywhere():
    with pytest.raises(ValueError, match="precision 'fp16'.*fp32 = the release"):
        precision.set_float32_mode("fp16")
    with pytest.raises(ConfigError, match="precision 'fp16'"):
        load_experiment(None, ["precision=fp16"])
    assert load_experiment(None).precision == "fp32"
    assert precision.precision_note("fp32") == ""
    assert "bfloat16" in precision.precision_note("bf16")


def tiny_config(tmp_path, name: str, prec: str) -> list[str]:
    return [f"name={name}", f"precision={prec}", "model.arch=tiny", "model.num_classes=4",
            "data.dataset=clips", "data.synthetic_size=16", "data.num_workers=0", "device=cpu",
            "solver.preset=custom", "solver.max_iter=3", "solver.batch_per_process=4",
            "solver.effective_batch=4", "solver.base_lr=0.05", "threads=1",
            "test.val_list=clips", "test.interval=2", f"run_root={tmp_path}"]


def test_training_runs_in_bf16_and_records_it(tmp_path):
    from tsn.train import train

    result = train(load_experiment(None, tiny_config(tmp_path, "bf16", "bf16")))
    assert np.isfinite(result.final_loss) and result.iterations == 3
    config = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert config["precision"] == "bf16"
    state = torch.load(result.checkpoint, weights_only=True)["model"]
    # weights and BN statistics stay float32 (autocast only computes in bf16)
    assert all(t.dtype == torch.float32 for k, t in state.items() if t.is_floating_point())
    # the same run in float32: close, but not equal (the forward really ran in bf16)
    train(load_experiment(None, tiny_config(tmp_path, "fp32", "fp32")))
    losses = [[float(line.split(",")[3]) for line in (tmp_path / name / "metrics.csv")
               .read_text().splitlines()[1:]] for name in ("bf16", "fp32")]
    assert losses[0] != losses[1]
    np.testing.assert_allclose(losses[0], losses[1], rtol=0.05)


def test_training_in_fp32_sets_ieee_even_after_tf32(tmp_path):
    from tsn.train import train

    precision.set_float32_mode("tf32")
    train(load_experiment(None, tiny_config(tmp_path, "fp32", "fp32")))
    assert flags() == ("ieee", "ieee")


class RecordsDtype(nn.Module):
    """A snippet model whose linear layer records the dtype it computed in."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)
        self.seen: set[torch.dtype] = set()

    def forward_snippets(self, x):
        y = self.fc(x[:, :, 0, 0])
        self.seen.add(y.dtype)
        return y


def test_evaluate_runs_the_forward_under_bf16_autocast_when_asked(tmp_path):
    import cv2

    from tsn.build import build_test_dataset
    from tsn.data.video_list import VideoRecord

    folder = tmp_path / "v"
    folder.mkdir()
    for t in range(1, 4):
        cv2.imwrite(str(folder / f"img_{t:05d}.jpg"), np.full((256, 340, 3), 40 * t, np.uint8))
    proto = Protocol(num_frames=2, num_crops=1)
    ds = build_test_dataset([VideoRecord(str(folder), 3, 0)], "rgb", proto, None)
    model = RecordsDtype()
    fp32 = evaluate(model, ds, ["v"], torch.device("cpu"), proto, progress=False)
    assert model.seen == {torch.float32}
    model.seen.clear()
    bf16 = evaluate(model, ds, ["v"], torch.device("cpu"), proto, progress=False,
                    precision="bf16")
    assert model.seen == {torch.bfloat16}
    assert bf16.scores.dtype == fp32.scores.dtype  # logits come back as float32
    np.testing.assert_allclose(bf16.scores, fp32.scores, rtol=0.05, atol=0.5)


def test_tiny_model_forward_in_bf16_keeps_bn_statistics_float32():
    torch.manual_seed(0)
    model = build_tsn("tiny", num_classes=2, num_segments=1).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(4, 3, 8, 8))
    assert out.dtype == torch.bfloat16
    bn1 = model.backbone.conv1.bn
    assert bn1.running_mean.dtype == torch.float32
    assert torch.isfinite(bn1.running_var).all()
