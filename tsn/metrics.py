"""Video-level metrics. Names say exactly what is computed (eval_net.py,
docs/caffe_release.md#testing).

The paper's metric is *mean class accuracy*: the diagonal of the confusion matrix divided by
its row sums (per-class recall), averaged over classes ([TSN] tools/eval_net.py, which uses the
sklearn confusion matrix). Overall top-1 (`video_top1`) is reported beside it, never instead.
"""

from __future__ import annotations

import numpy as np


def _check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} "
                         f"dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got range "
                         f"[{labels.min()}, {labels.max()}]")
    return labels


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Count matrix `cm[true, predicted]` of shape (num_classes, num_classes), int64."""
    labels = _check_labels(labels, num_classes)
    predictions = _check_labels(predictions, num_classes)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.shape[0]} labels but {predictions.shape[0]} predictions")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Diagonal / row sum of a confusion matrix; NaN for classes with no test video."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, np.diag(cm) / np.where(rows > 0, rows, 1), np.nan)


def mean_class_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mean over classes of per-class accuracy, from (N, C) scores and N labels (in [0, 1]).

    Classes with no test video are left out of the mean: sklearn's confusion matrix in
    eval_net.py only has rows for labels present, so they never enter the original average.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, C), got shape {scores.shape}")
    cm = confusion_matrix(labels, scores.argmax(axis=1), scores.shape[1])
    return mean_class_accuracy_from_confusion(cm)


def mean_class_accuracy_from_confusion(cm: np.ndarray) -> float:
    """Mean class accuracy of a confusion matrix (classes without videos are skipped)."""
    acc = per_class_accuracy(cm)
    present = ~np.isnan(acc)
    if not present.any():
        raise ValueError("confusion matrix is empty: no video to score")
    return float(acc[present].mean())


def video_top1(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of videos whose argmax score is the label (overall accuracy, in [0, 1])."""
    scores = np.asarray(scores)
    labels = _check_labels(labels, scores.shape[1])
    if scores.shape[0] != labels.shape[0] or scores.shape[0] == 0:
        raise ValueError(f"{scores.shape[0]} score rows but {labels.shape[0]} labels")
    return float((scores.argmax(axis=1) == labels).mean())


def top_confusions(cm: np.ndarray, k: int = 15) -> list[tuple[int, int, int]]:
    """The `k` largest off-diagonal cells of a confusion matrix as (true, predicted, videos),
    largest first (ties in row-major order); empty cells are never listed."""
    off = np.array(cm, dtype=np.int64)
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:k]
    cells = [np.unravel_index(i, off.shape) for i in order]
    return [(int(t), int(p), int(off[t, p])) for t, p in cells if off[t, p] > 0]
