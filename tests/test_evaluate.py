"""`tsn test` evaluate(): 25x10 protocol on tiny frame folders with hand-checkable models."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from tsn.build import build_test_dataset
from tsn.data.video_list import VideoRecord
from tsn.evaluate import evaluate, snippet_forward
from tsn.scores import Protocol, load_scores

RAMP = 0.7  # channel B of every frame = RAMP * x (+ 10 * frame index): crops see different x


def write_video(folder, num_frames: int, step: int = 10) -> VideoRecord:
    """img_00001.jpg ... 340x256 frames: B = 0.7*x + step*(t-1), G = step*t, R = 50."""
    folder.mkdir(parents=True)
    x = np.arange(340, dtype=np.float32)[None, :].repeat(256, 0)
    for t in range(1, num_frames + 1):
        img = np.stack([RAMP * x + step * (t - 1), np.full_like(x, step * t),
                        np.full_like(x, 50)], axis=2)
        cv2.imwrite(str(folder / f"img_{t:05d}.jpg"), np.clip(img, 0, 255).astype(np.uint8),
                    [cv2.IMWRITE_JPEG_QUALITY, 100])
    return VideoRecord(str(folder), num_frames, 0)


class TopLeftPixel(nn.Module):
    """Logits = the 3 channels at the crop's top-left pixel (mean-subtracted BGR)."""

    def forward_snippets(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0, 0]


def test_25x10_views_frames_and_crops_by_hand(tmp_path):
    rec = write_video(tmp_path / "v_A_g01_c01", 12)
    proto = Protocol(num_frames=5, num_crops=10)  # 5 ticks: step (12-1)//4 = 2 -> 1,3,5,7,9
    ds = build_test_dataset([rec], "rgb", proto, None)
    vs = evaluate(TopLeftPixel(), ds, ["v_A"], torch.device("cpu"), proto, batch_snippets=7,
                  keep_full=True, progress=False)
    full = vs.full[0]  # (5 frames, 10 crops, 3)
    assert full.shape == (5, 10, 3)
    # crop x offsets TL 0, TR 116, BL 0, BR 116, centre 58; mirrored crops see x + 223
    xs = np.array([0, 116, 0, 116, 58, 223, 339, 223, 339, 281])
    ticks = np.array([1, 3, 5, 7, 9])
    b = RAMP * xs[None, :] + 10 * (ticks[:, None] - 1) - 104  # BGR mean [104, 117, 123]
    np.testing.assert_allclose(full[:, :, 0], np.clip(b + 104, 0, 255) - 104, atol=3)
    np.testing.assert_allclose(full[:, :, 1], 10 * ticks[:, None] - 117 + 0 * xs, atol=3)
    # aggregation: mean over crops, then frames; max variant takes the mirrored TR crop
    assert vs.scores[0, 1] == pytest.approx(10 * ticks.mean() - 117, abs=2)
    proto_max = Protocol(num_frames=5, num_crops=10, crop_agg="max")
    vmax = evaluate(TopLeftPixel(), ds, ["v_A"], torch.device("cpu"), proto_max,
                    progress=False)
    assert vmax.scores[0, 0] == pytest.approx(np.clip(b + 104, 0, 255).max(1).mean() - 104,
                                              abs=3)


def test_full_25x10_protocol_on_a_100_frame_video(tmp_path):
    rec = write_video(tmp_path / "v_E", 100, step=2)
    proto = Protocol()  # 25 x 10, mean
    ds = build_test_dataset([rec], "rgb", proto, None)
    ticks = np.arange(25) * 4 + 1  # eval_net: step (100 - 1) // 24 = 4 -> 1, 5, ..., 97
    assert ds.ticks(0) == ticks.tolist()
    vs = evaluate(TopLeftPixel(), ds, ["v_E"], torch.device("cpu"), proto, keep_full=True,
                  progress=False)
    assert vs.full.shape == (1, 25, 10, 3)
    np.testing.assert_allclose(vs.full[0, :, :, 1], np.repeat(2 * ticks[:, None] - 117, 10, 1),
                               atol=2)
    assert vs.scores[0, 1] == pytest.approx(2 * ticks.mean() - 117, abs=1)  # = -19


def test_segment_centre_sampling_and_short_video(tmp_path):
    rec = write_video(tmp_path / "v_B", 9)
    proto = Protocol(num_frames=3, num_crops=1, frame_sampling="segment_centre")
    ds = build_test_dataset([rec], "rgb", proto, None)
    assert ds.ticks(0) == [2, 5, 8]  # avg 3: offsets (3-1+1)//2 = 1, +3, +6 (0-based)
    short = build_test_dataset([write_video(tmp_path / "v_C", 3)], "rgb", Protocol(), None)
    assert short.ticks(0) == [1] * 25  # step (3-1)//24 = 0 -> every tick is frame 1


def test_snippet_forward_of_a_k_segment_model_equals_snippet_logits():
    from tsn.models import build_tsn

    torch.manual_seed(0)
    model = build_tsn("tiny", num_classes=4, num_segments=3).eval()
    x = torch.randn(5, 3, 8, 8)
    per_snippet = torch.stack([model(xi.repeat(3, 1, 1)[None])[0] for xi in x])
    torch.testing.assert_close(snippet_forward(model)(x), per_snippet)
    assert model.num_segments == 3


def test_view_count_mismatch_is_a_clear_error(tmp_path):
    rec = write_video(tmp_path / "v_D", 4)
    ds = build_test_dataset([rec], "rgb", Protocol(num_frames=2, num_crops=1), None)
    with pytest.raises(ValueError, match="needs 25"):
        evaluate(TopLeftPixel(), ds, ["v_D"], torch.device("cpu"),
                 Protocol(num_frames=25, num_crops=1), progress=False)


def test_tsn_test_cli_on_a_trained_tiny_run(tmp_path, capsys):
    """train 1 iteration of the tiny model on frame folders, then `tsn test` it."""
    from tsn.cli import main

    recs = [write_video(tmp_path / f"v_{c}_{i}", 6) for c in "AB" for i in range(2)]
    lines = [f"{r.path} {r.num_frames} {k // 2}" for k, r in enumerate(recs)]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"name": "t", "model": {"arch": "tiny", "num_classes": 2},
                               "data": {"dataset": "ucf101", "num_workers": 0,
                                        "train_list": str(tmp_path / "list.txt")},
                               "solver": {"max_iter": 1, "batch_per_process": 2,
                                          "effective_batch": 2}}))
    run_dir = tmp_path / "run"
    assert main(["train", str(cfg), "--run-dir", str(run_dir)]) == 0
    out = tmp_path / "s.npz"
    rc = main(["test", str(run_dir), "--list", str(tmp_path / "list.txt"), "--frames", "2",
               "--crops", "1", "--out", str(out), "--dataset", "synthetic", "--split", "1"])
    assert rc == 0
    vs = load_scores(out)
    assert vs.video_ids == tuple(f"v_{c}_{i}" for c in "AB" for i in range(2))
    assert vs.labels.tolist() == [0, 0, 1, 1] and vs.scores.shape == (4, 2)
    assert vs.protocol.label == "2x1 mean" and vs.protocol.dataset == "synthetic"
    record = vs.protocol.extra["record"]
    assert record["config"]["model"]["arch"] == "tiny" and record["seed"] == 0
    assert set(record) >= {"commit", "versions", "hardware", "date"}
    # the release's clip rule and float32: named, and no deviation note
    assert vs.protocol.extra["clip_mode"] == "release" and vs.protocol.note == ""
    assert (tmp_path / "s.confusion.png").is_file()
    out_text = capsys.readouterr().out
    assert "mean class accuracy" in out_text and "(95% CI " in out_text
    # the five worst classes (here both), each with its accuracy and counts
    worst = out_text.split("five worst classes:\n")[1].splitlines()
    assert len(worst) == 2 and all("% (" in w and "/2)" in w for w in worst)
    assert (tmp_path / "s.per_class.csv").read_text().startswith("class,name,videos,correct")
    assert not (tmp_path / "s.partial.npz").exists()  # removed once s.npz is written
    assert main(["test", str(tmp_path / "nope"), "--list", str(tmp_path / "list.txt")]) == 2


def test_load_trained_needs_no_imagenet_init_file(tmp_path):
    """Testing reads every weight from the checkpoint, never the init file training used."""
    import dataclasses

    from tsn.build import load_trained
    from tsn.config import Experiment, to_dict
    from tsn.engine import checkpoint
    from tsn.models import build_tsn

    trained = build_tsn("clarifai", num_classes=5, modality="rgb", init="scratch")
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.5)
    exp = Experiment()
    model_cfg = dataclasses.replace(exp.model, arch="clarifai", num_classes=5, modality="rgb",
                                    init="imagenet", init_weights=str(tmp_path / "gone.pt"))
    exp = dataclasses.replace(exp, model=model_cfg)
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(to_dict(exp)))
    state = {"model": trained.state_dict(), "optimizer": {}, "data": {}, "rng": {}, "config": {}}
    checkpoint.save(run / "checkpoints", 10, state)
    model, loaded_exp, ckpt = load_trained(run, None, torch.device("cpu"))
    assert ckpt.name.endswith("0000010.pt")
    assert loaded_exp.model.init_weights.endswith("gone.pt")  # the record still says what trained
    for (name, want), got in zip(trained.state_dict().items(), model.state_dict().values()):
        assert torch.equal(want, got), name


class WholeVideoItems(torch.utils.data.Dataset):
    """The dataset seen only through `__getitem__` (no `views`): the whole-video path."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        return self.dataset[i]


class CrashAfter(TopLeftPixel):
    """TopLeftPixel that counts forward calls and raises at call `crash_at` (a killed run)."""

    def __init__(self, crash_at: int | None = None):
        super().__init__()
        self.calls, self.crash_at = 0, crash_at

    def forward_snippets(self, x):
        self.calls += 1
        if self.calls == self.crash_at:
            raise RuntimeError("simulated crash")
        return super().forward_snippets(x)


def test_views_are_read_a_forward_batch_at_a_time_with_the_same_scores(tmp_path):
    recs = [write_video(tmp_path / f"v_{k}", 8 + k) for k in range(2)]
    proto = Protocol(num_frames=5, num_crops=10)
    ds = build_test_dataset(recs, "rgb", proto, None)
    assert ds.views(1, slice(2, 4)).shape == (20, 3, 224, 224)
    assert torch.equal(ds.views(1, slice(2, 4)), ds[1][0][20:40])
    model = CrashAfter()
    chunked = evaluate(model, ds, ["a", "b"], torch.device("cpu"), proto, batch_snippets=20,
                       keep_full=True, progress=False)
    assert model.calls == 2 * 3  # 5 frames in items of 2, 2, 1 per video
    whole = evaluate(TopLeftPixel(), WholeVideoItems(ds), ["a", "b"], torch.device("cpu"),
                     proto, batch_snippets=20, keep_full=True, progress=False)
    np.testing.assert_array_equal(chunked.full, whole.full)
    np.testing.assert_array_equal(chunked.scores, whole.scores)


def test_an_interrupted_test_resumes_without_rerunning_finished_videos(tmp_path):
    recs = [write_video(tmp_path / f"v_{k}", 6 + k) for k in range(4)]
    ids = [f"v_{k}" for k in range(4)]
    proto = Protocol(num_frames=2, num_crops=10, weights="ckpt")
    ds = build_test_dataset(recs, "rgb", proto, None)
    cpu = torch.device("cpu")
    reference = evaluate(TopLeftPixel(), ds, ids, cpu, proto, batch_snippets=10, keep_full=True,
                         progress=False)
    partial = tmp_path / "s.partial.npz"
    crashing = CrashAfter(crash_at=6)  # 2 forwards per video: dies inside the third video
    with pytest.raises(RuntimeError, match="simulated crash"):
        evaluate(crashing, ds, ids, cpu, proto, batch_snippets=10, keep_full=True,
                 progress=False, partial=partial, save_every_s=1e9)
    assert load_scores(partial).video_ids == ("v_0", "v_1")  # saved on the way out
    resumed_model = CrashAfter()
    resumed = evaluate(resumed_model, ds, ids, cpu, proto, batch_snippets=10, keep_full=True,
                       progress=False, partial=partial)
    assert resumed_model.calls == 2 * 2  # only v_2 and v_3 ran
    np.testing.assert_array_equal(resumed.full, reference.full)
    np.testing.assert_array_equal(resumed.scores, reference.scores)
    assert resumed.labels.tolist() == reference.labels.tolist()
    other = Protocol(num_frames=2, num_crops=10, weights="another-ckpt")
    with pytest.raises(ValueError, match="partial scores of another test.*--restart"):
        evaluate(TopLeftPixel(), ds, ids, cpu, other, keep_full=True, progress=False,
                 partial=partial)


def test_partial_file_is_saved_periodically(tmp_path):
    recs = [write_video(tmp_path / f"v_{k}", 6) for k in range(3)]
    proto = Protocol(num_frames=2, num_crops=1)
    ds = build_test_dataset(recs, "rgb", proto, None)
    partial = tmp_path / "p.partial.npz"
    with pytest.raises(RuntimeError):  # save_every_s=0: saved after every video
        evaluate(CrashAfter(crash_at=3), ds, ["a", "b", "c"], torch.device("cpu"), proto,
                 progress=False, partial=partial, save_every_s=0)
    assert load_scores(partial).video_ids == ("a", "b")


def test_score_file_note_names_caffes_clip_rule():
    """A run trained with Caffe's literal iter_size clip says so in its score files."""
    from tsn.config import load_experiment
    from tsn.evaluate import _deviation_note

    assert _deviation_note(load_experiment(None), "fp32") == ""
    literal = load_experiment(None, ["solver.clip_mode=caffe_iter_size"])
    assert _deviation_note(literal, "fp32").startswith("clip_mode caffe_iter_size")
    both = _deviation_note(literal, "bf16")
    assert both.startswith("precision bf16") and "; clip_mode caffe_iter_size" in both
