"""Metrics against hand-computed confusion matrices (eval_net.py, docs/caffe_release.md#testing)."""

from __future__ import annotations

import numpy as np
import pytest

from tsn.metrics import (
    confusion_matrix,
    mean_class_accuracy,
    mean_class_accuracy_from_confusion,
    per_class_accuracy,
    video_top1,
)

# 3 classes, 7 videos. True labels and predictions, with the confusion matrix by hand:
#   class 0: 3 videos, predicted 0,0,1      -> row [2,1,0]  acc 2/3
#   class 1: 1 video,  predicted 1          -> row [0,1,0]  acc 1
#   class 2: 3 videos, predicted 0,2,1      -> row [1,1,1]  acc 1/3
LABELS = np.array([0, 0, 0, 1, 2, 2, 2])
PREDS = np.array([0, 0, 1, 1, 0, 2, 1])
CM_BY_HAND = np.array([[2, 1, 0], [0, 1, 0], [1, 1, 1]])


def one_hot_scores(preds: np.ndarray, num_classes: int = 3) -> np.ndarray:
    scores = np.full((len(preds), num_classes), -1.0)
    scores[np.arange(len(preds)), preds] = 2.0
    return scores


def test_confusion_matrix_matches_hand_count():
    np.testing.assert_array_equal(confusion_matrix(LABELS, PREDS, 3), CM_BY_HAND)


def test_mean_class_accuracy_is_mean_of_per_class_recall():
    expected = (2 / 3 + 1 + 1 / 3) / 3  # = 2/3, not the overall 4/7
    assert mean_class_accuracy(one_hot_scores(PREDS), LABELS) == pytest.approx(expected)
    assert mean_class_accuracy_from_confusion(CM_BY_HAND) == pytest.approx(expected)


def test_video_top1_is_overall_accuracy_and_differs_from_mean_class():
    assert video_top1(one_hot_scores(PREDS), LABELS) == pytest.approx(4 / 7)
    assert video_top1(one_hot_scores(PREDS), LABELS) != pytest.approx(
        mean_class_accuracy(one_hot_scores(PREDS), LABELS))


def test_class_without_videos_is_skipped_like_sklearn():
    # 4 classes but class 3 has no test video: eval_net's sklearn matrix has no row for it.
    scores = np.pad(one_hot_scores(PREDS), ((0, 0), (0, 1)), constant_values=-5.0)
    assert np.isnan(per_class_accuracy(confusion_matrix(LABELS, PREDS, 4))[3])
    assert mean_class_accuracy(scores, LABELS) == pytest.approx(2 / 3)


def test_bad_labels_raise_clear_error():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(ValueError, match="score rows"):
        video_top1(np.zeros((2, 3)), np.array([0, 1, 2]))
