"""tsn.stats: textbook intervals, the mean-class-accuracy interval, its coverage, McNemar."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tsn import stats

Z95 = 1.959963984540054


def test_z_is_the_normal_quantile():
    assert stats.z_value(0.95) == pytest.approx(Z95, abs=1e-12)
    with pytest.raises(ValueError):
        stats.z_value(1.0)


def test_fifty_of_a_hundred_gives_the_textbook_intervals():
    """Wilson 0.4038-0.5962 and Clopper-Pearson 0.3983-0.6017 (e.g. Brown, Cai & DasGupta 2001,
    Agresti & Coull 1998 tables); Wilson written out: (p + z^2/2n -+ z sqrt(p(1-p)/n +
    z^2/4n^2)) / (1 + z^2/n)."""
    wilson = stats.proportion_interval(50, 100)
    assert (round(wilson.low, 4), round(wilson.high, 4)) == (0.4038, 0.5962)
    p, n, z = 0.5, 100, Z95
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    centre = p + z * z / (2 * n)
    assert wilson.low == pytest.approx((centre - half) / (1 + z * z / n), abs=1e-9)
    assert wilson.high == pytest.approx((centre + half) / (1 + z * z / n), abs=1e-9)
    exact = stats.proportion_interval(50, 100, method="exact")
    assert (round(exact.low, 4), round(exact.high, 4)) == (0.3983, 0.6017)
    # one class: the mean-class interval is Agresti-Coull's, equal to Wilson's at p = 1/2
    one = stats.mean_class_interval([50], [100])
    assert one.low == pytest.approx(wilson.low, abs=1e-9)
    assert one.high == pytest.approx(wilson.high, abs=1e-9)
    assert one.contains(0.45) and not one.contains(0.39)


def test_mean_class_interval_on_a_constructed_case():
    """Two classes, 8/10 and 5/10 (mean class accuracy 0.65), a third without videos (skipped):
    each class gets z^2/4 pseudo-successes of z^2/2 pseudo-trials, Var = sum p(1-p)/n' / C^2."""
    got = stats.mean_class_interval([8, 5, 0], [10, 10, 0])
    z = Z95
    a = z * z / 2  # pseudo-trials per class (C = 2)
    p = [(8 + a / 2) / (10 + a), (5 + a / 2) / (10 + a)]
    se = math.sqrt(sum(q * (1 - q) / (10 + a) for q in p)) / 2
    assert got.low == pytest.approx(sum(p) / 2 - z * se, abs=1e-12)
    assert got.high == pytest.approx(sum(p) / 2 + z * se, abs=1e-12)
    assert (round(got.low, 4), round(got.high, 4)) == (0.4383, 0.8134)
    # a perfect class still has a width (plain Wald would give 1.0-1.0)
    perfect = stats.mean_class_interval([10], [10])
    assert perfect.high == 1.0 and perfect.low < 0.8
    with pytest.raises(ValueError, match="no class has a test video"):
        stats.mean_class_interval([0], [0])


def test_ucf101_sized_interval_is_about_0_8_points():
    """101 classes of ~37.5 videos (3,783 / 101) at 94%: about +-0.76 pp, as overall accuracy's
    +-0.76 pp on 3,783 videos; unequal class sizes only widen it (sum 1/n_c >= C^2 / N)."""
    videos = np.full(101, 37)
    correct = np.round(0.94 * videos).astype(int)  # 35 of 37
    got = stats.mean_class_interval(correct, videos)
    assert 100 * (got.high - got.low) / 2 == pytest.approx(0.77, abs=0.05)
    uneven = stats.mean_class_interval(np.round(0.94 * np.tile([28, 47], 51)[:101]),
                                       np.tile([28, 47], 51)[:101])
    assert uneven.high - uneven.low > got.high - got.low


@pytest.mark.parametrize("true_p, n", [
    ((1, 1, .5, .5, 1, 1, .5, .5), 2),  # the demo's pairs, 2 videos per class
    ((1, 1, .5, .5, 1, 1, .5, .5), 8),
    ((.98,) * 8, 8),  # near-perfect classes, where Wald covers ~73%
    ((.7,) * 51, 30),  # HMDB51-sized
])
def test_mean_class_interval_covers_about_95_percent(true_p, n):
    rng = np.random.default_rng(0)
    true_p = np.asarray(true_p)
    hits, sims = 0, 1500
    for _ in range(sims):
        correct = rng.binomial(n, true_p)
        hits += stats.mean_class_interval(correct, np.full(true_p.size, n)).contains(
            true_p.mean())
    assert 0.925 <= hits / sims <= 0.985


def test_splits_combine_with_variances_over_s_squared():
    one = stats.mean_class_interval([30, 20], [40, 40])
    three = stats.mean_of_intervals([([30, 20], [40, 40])] * 3)
    assert (three.low + three.high) == pytest.approx(one.low + one.high)
    assert (three.high - three.low) == pytest.approx((one.high - one.low) / math.sqrt(3))


def test_scores_interval_counts_per_class():
    scores = np.eye(3)[[0, 0, 1, 2, 2, 2]]
    labels = np.array([0, 1, 1, 2, 2, 0])
    correct, videos = stats.class_counts(labels, scores.argmax(1), 3)
    assert correct.tolist() == [1, 1, 2] and videos.tolist() == [2, 2, 2]
    assert stats.scores_interval(scores, labels) == stats.mean_class_interval([1, 1, 2],
                                                                              [2, 2, 2])


def test_mcnemar_exact():
    """10 videos right only in A, 2 only in B: p = 2 * P(X <= 2 | 12, 1/2) = 158 / 4096."""
    a = np.array([True] * 10 + [False] * 2 + [True] * 5 + [False] * 3)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5 + [False] * 3)
    got = stats.mcnemar(a, b)
    assert (got.only_a, got.only_b, got.both, got.neither) == (10, 2, 5, 3)
    assert got.p_value == pytest.approx(158 / 4096)
    assert "10 right only in A, 2 right only in B" in got.describe()
    assert stats.mcnemar(a, a).p_value == 1.0
    scores = np.eye(2)[[0, 1, 1]]
    assert stats.mcnemar_scores(scores, scores, np.array([0, 1, 0])).both == 2
    with pytest.raises(ValueError):
        stats.mcnemar(a, b[:3])
