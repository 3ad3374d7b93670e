"""Fusion arithmetic against hand-computed scores, alignment refusal, `tsn fuse` CLI."""

from __future__ import annotations

import numpy as np
import pytest

from tsn.fusion import default_weights, fuse
from tsn.fusion import run as fuse_run
from tsn.scores import (
    Protocol,
    ScoreFileError,
    VideoScores,
    aggregate,
    load_scores,
    save_scores,
)

IDS = ("v_A_g01_c01", "v_B_g01_c01", "v_C_g01_c01")
LABELS = np.array([0, 1, 2])
# RGB gets video 0 and 2 right, flow gets 1 and 2 right.
RGB = np.array([[3.0, 1.0, 0.0], [3.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
FLOW = np.array([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 2.0]])


def make(scores, modality, ids=IDS, labels=LABELS):
    return VideoScores(ids, np.asarray(labels), np.asarray(scores), Protocol(modality=modality))


def test_fusion_weighted_sum_by_hand():
    fused = fuse([make(RGB, "rgb"), make(FLOW, "flow")])  # default 1 : 1.5
    # video 0: [3,1,0] + 1.5*[0,1,0] = [3, 2.5, 0]; video 1: [3,1,0]+[0,3,0] = [3,4,0];
    # video 2: [0,0,1] + [1.5,0,3] = [1.5, 0, 4]
    np.testing.assert_allclose(fused.scores, [[3, 2.5, 0], [3, 4, 0], [1.5, 0, 4]])
    assert fused.protocol.modality == "rgb+flow"
    assert "1.5*run1" in fused.protocol.weights


def test_fusion_explicit_weights_and_no_softmax():
    fused = fuse([make(RGB, "rgb"), make(FLOW, "flow")], weights=[2.0, 0.5])
    np.testing.assert_allclose(fused.scores[0], [6.0, 2.5, 0.0])  # raw logits, not probs


def test_default_weights():
    assert default_weights(2) == (1.0, 1.5)
    assert default_weights(3) == (1.0, 1.0, 0.5)
    assert default_weights(4) == (1.0, 1.0, 1.0, 1.0)


def test_fusion_refuses_reordered_videos():
    other = make(FLOW[[1, 0, 2]], "flow", ids=(IDS[1], IDS[0], IDS[2]), labels=[1, 0, 2])
    with pytest.raises(ScoreFileError, match=r"rgb.npz vs flow.npz: video #0 is 'v_A"):
        fuse([make(RGB, "rgb"), other], names=["rgb.npz", "flow.npz"])


def test_fusion_refuses_different_labels():
    with pytest.raises(ScoreFileError, match=r"label of video #1 .* is 1 vs 2"):
        fuse([make(RGB, "rgb"), make(FLOW, "flow", labels=[0, 2, 2])], names=["a", "b"])


def test_fusion_refuses_different_lengths_and_weight_count():
    with pytest.raises(ScoreFileError, match="3 videos vs 2"):
        fuse([make(RGB, "rgb"), make(FLOW[:2], "flow", ids=IDS[:2], labels=LABELS[:2])])
    with pytest.raises(ValueError, match="2 score files but 3 weights"):
        fuse([make(RGB, "rgb"), make(FLOW, "flow")], weights=[1, 1, 1])


def test_aggregate_mean_then_frames_and_max():
    full = np.zeros((2, 3, 1))  # (frames, crops, C)
    full[0, :, 0] = [1, 2, 6]
    full[1, :, 0] = [0, 0, 3]
    assert aggregate(full, "mean")[0] == pytest.approx((3 + 1) / 2)
    assert aggregate(full, "max")[0] == pytest.approx((6 + 3) / 2)


def test_score_file_round_trip_is_pickle_free(tmp_path):
    full = np.random.default_rng(0).normal(size=(3, 25, 10, 3)).astype(np.float32)
    vs = VideoScores(IDS, LABELS, aggregate(full), Protocol(modality="flow", split=1), full)
    path = save_scores(tmp_path / "flow.npz", vs)
    with np.load(path, allow_pickle=False) as z:  # would raise on object arrays
        assert z["video_ids"].dtype.kind == "U"
    back = load_scores(path)
    assert back.video_ids == IDS and back.protocol.modality == "flow"
    np.testing.assert_allclose(back.scores, vs.scores, rtol=1e-6)
    assert back.full.shape == (3, 25, 10, 3)


def test_load_refuses_legacy_object_npz(tmp_path):
    legacy = np.empty((1, 2), dtype=object)
    legacy[0, 0], legacy[0, 1] = np.zeros((25, 10, 3)), 0
    np.savez(tmp_path / "legacy.npz", scores=legacy, labels=[0])
    with pytest.raises(ScoreFileError, match="import_eval_net_npz"):
        load_scores(tmp_path / "legacy.npz")
    from tsn.scores import import_eval_net_npz
    vs = import_eval_net_npz(tmp_path / "legacy.npz")
    assert vs.scores.shape == (1, 3) and vs.protocol.num_crops == 10


def test_fuse_cli(tmp_path, capsys):
    import argparse

    from tsn.fusion import add_arguments
    a = save_scores(tmp_path / "rgb.npz", make(RGB, "rgb"))
    b = save_scores(tmp_path / "flow.npz", make(FLOW, "flow"))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "fused.npz"
    assert fuse_run(parser.parse_args([str(a), str(b), "--out", str(out)])) == 0
    text = capsys.readouterr().out
    # rgb: classes 0,2 right -> 66.67%; fused all right -> 100%
    assert "66.67%" in text and "fused: mean class accuracy 100.00%" in text
    np.testing.assert_allclose(load_scores(out).scores[1], [3, 4, 0])
    bad = save_scores(tmp_path / "bad.npz", make(FLOW, "flow", labels=[0, 1, 1]))
    assert fuse_run(parser.parse_args([str(a), str(bad)])) == 2
    assert "bad.npz" in capsys.readouterr().err
