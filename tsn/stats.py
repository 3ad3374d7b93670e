"""Statistics where they decide: confidence intervals of accuracies and paired tests of two runs.

A reproduced accuracy is measured on a finite test set (UCF101 split 1: 3,783 videos), so it
carries an uncertainty that the reports state as a 95% confidence interval; "reproduced" means
the paper's number lies inside it (docs/reproduce.md, "Intervals"). The interval covers only the
test set's finite size (which videos happen to be in it), not training randomness: another seed
or another run of the same recipe adds its own spread on top.

* One proportion (a class's accuracy, overall top-1): the Wilson score interval
  (`proportion_interval`; scipy.stats.binomtest's `proportion_ci`, method "wilson"), or
  Clopper-Pearson ("exact"). 50 of 100 -> Wilson 0.4038-0.5962, Clopper-Pearson 0.3983-0.6017.
* Mean class accuracy (the paper's metric, tsn/metrics.py) is the mean of C per-class
  proportions p_c = k_c / n_c with independent binomial errors, so
  Var = (1/C^2) sum_c p_c (1 - p_c) / n_c. Its interval (`mean_class_interval`) is the normal
  approximation of that variance with an Agresti-Coull-style adjustment: each class gets
  z^2/(2C) pseudo-successes out of z^2/C pseudo-trials before p_c and its variance are taken.
  With one class this is exactly the Agresti-Coull interval (whose centre and width equal
  Wilson's at p = 1/2); with many classes the adjustment is spread so thin that it only keeps a
  class at 0% or 100% from claiming zero variance, which the plain (Wald) formula does. A
  simulation (tests/test_stats.py) shows ~95% coverage from 2 videos per class to UCF101's size,
  where Wald covers 71-73% on small sets.
* Two runs of ours on the same videos (recipes, streams vs fusion): the exact McNemar test
  (`mcnemar`): of the videos exactly one run gets right, the split between the runs is
  Binomial(b + c, 1/2) under "equally accurate" (scipy.stats.binomtest). It tests overall
  (video) accuracy, paired by video, which is what two classifiers on one test list differ in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LEVEL = 0.95  # every report's confidence level


@dataclass(frozen=True)
class Interval:
    """A confidence interval of a proportion or accuracy, in [0, 1]."""

    low: float
    high: float
    level: float = LEVEL
    method: str = ""

    def contains(self, value: float) -> bool:
        """Whether `value` (same scale, [0, 1]) lies inside the closed interval."""
        return self.low <= value <= self.high

    def percent(self) -> tuple[float, float]:
        """(low, high) in percent."""
        return 100 * self.low, 100 * self.high


def z_value(level: float = LEVEL) -> float:
    """The two-sided standard-normal quantile of `level` (1.959964 for 0.95)."""
    from scipy.stats import norm

    if not 0 < level < 1:
        raise ValueError(f"confidence level must lie in (0, 1), got {level}")
    return float(norm.ppf(0.5 + level / 2))


def proportion_interval(correct: int, total: int, level: float = LEVEL,
                        method: str = "wilson") -> Interval:
    """Interval of one proportion `correct / total`: "wilson" (default) or "exact"
    (Clopper-Pearson), as scipy.stats.binomtest(...).proportion_ci computes them."""
    from scipy.stats import binomtest

    if total <= 0 or not 0 <= correct <= total:
        raise ValueError(f"need 0 <= correct <= total and total > 0, got {correct}/{total}")
    ci = binomtest(int(correct), int(total)).proportion_ci(confidence_level=level, method=method)
    return Interval(float(ci.low), float(ci.high), level, method)


def _adjusted(correct: np.ndarray, videos: np.ndarray, z: float) -> tuple[float, float]:
    """(centre, variance) of the adjusted mean of the classes that have videos."""
    keep = videos > 0
    k, n = correct[keep].astype(np.float64), videos[keep].astype(np.float64)
    if k.size == 0:
        raise ValueError("no class has a test video")
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("correct counts must lie in 0..videos per class")
    c = k.size
    extra = z * z / c  # pseudo-trials per class; half of them successes
    p = (k + extra / 2) / (n + extra)
    return float(p.mean()), float((p * (1 - p) / (n + extra)).sum() / c**2)


def mean_class_interval(correct: Sequence[int], videos: Sequence[int],
                        level: float = LEVEL) -> Interval:
    """Interval of mean class accuracy from per-class correct counts and video counts.

    Classes without a test video are left out, as the metric leaves them out (tsn/metrics.py).
    """
    return mean_of_intervals([(correct, videos)], level)


def mean_of_intervals(parts: Sequence[tuple[Sequence[int], Sequence[int]]],
                      level: float = LEVEL) -> Interval:
    """Interval of the mean of several mean class accuracies on disjoint test sets (Table 6's
    mean of splits 1-3): the adjusted centres averaged, their variances added over S^2."""
    z = z_value(level)
    pieces = [_adjusted(np.asarray(k), np.asarray(n), z) for k, n in parts]
    if not pieces:
        raise ValueError("no test set to combine")
    centre = sum(p for p, _ in pieces) / len(pieces)
    half = z * math.sqrt(sum(v for _, v in pieces)) / len(pieces)
    return Interval(max(0.0, centre - half), min(1.0, centre + half), level,
                    "adjusted Wald, per-class binomial")


def class_counts(labels: np.ndarray, predictions: np.ndarray,
                 num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(correct, videos) per class from labels and predicted classes."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    videos = np.bincount(labels, minlength=num_classes)
    correct = np.bincount(labels[labels == predictions], minlength=num_classes)
    return correct, videos


def scores_interval(scores: np.ndarray, labels: np.ndarray, level: float = LEVEL) -> Interval:
    """Mean class accuracy interval of (N, C) scores against N labels (argmax prediction)."""
    scores = np.asarray(scores)
    correct, videos = class_counts(labels, scores.argmax(axis=1), scores.shape[1])
    return mean_class_interval(correct, videos, level)


@dataclass(frozen=True)
class McNemar:
    """Exact McNemar test of two runs on the same videos."""

    only_a: int  # videos run A gets right and run B wrong
    only_b: int  # videos run B gets right and run A wrong
    both: int  # right in both runs
    neither: int
    p_value: float  # two-sided, exact binomial on only_a + only_b

    def describe(self, name_a: str = "A", name_b: str = "B") -> str:
        """One sentence: the discordant counts and the p-value."""
        videos = self.only_a + self.only_b + self.both + self.neither
        return (f"McNemar exact test on the same {videos} videos: {self.only_a} right only in "
                f"{name_a}, {self.only_b} right only in {name_b}, p = {self.p_value:.3g}")


def mcnemar(correct_a: Sequence[bool], correct_b: Sequence[bool]) -> McNemar:
    """Exact two-sided McNemar test of two paired per-video correctness vectors."""
    from scipy.stats import binomtest

    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired correctness vectors must have one shape, got {a.shape} and "
                         f"{b.shape}")
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    discordant = only_a + only_b
    p = 1.0 if discordant == 0 else float(binomtest(only_a, discordant, 0.5).pvalue)
    return McNemar(only_a, only_b, int((a & b).sum()), int((~a & ~b).sum()), p)


def mcnemar_scores(scores_a: np.ndarray, scores_b: np.ndarray,
                   labels: np.ndarray) -> McNemar:
    """McNemar test of two (N, C) score arrays of the same N videos (argmax predictions)."""
    labels = np.asarray(labels)
    return mcnemar(np.asarray(scores_a).argmax(1) == labels,
                   np.asarray(scores_b).argmax(1) == labels)
