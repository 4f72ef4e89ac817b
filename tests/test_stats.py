import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from nirnet.eval.stats import _auc_of, balanced_accuracy, bootstrap_auc, bootstrap_auc_difference, bootstrap_mean_auc


def test_rank_auc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 10, 50).astype(float)
    fake = rng.integers(3, 13, 40).astype(float)
    y = np.r_[np.zeros(50), np.ones(40)]
    assert _auc_of(real, fake) == pytest.approx(roc_auc_score(y, np.r_[real, fake]))


def test_bootstrap_interval_covers_and_narrows_with_more_data():
    rng = np.random.default_rng(1)
    widths = []
    for n in (20, 400):
        y = np.r_[np.zeros(n), np.ones(n)]
        s = np.r_[rng.normal(0, 1, n), rng.normal(1, 1, n)]
        point, lo, hi = bootstrap_auc(y, s, rounds=300)
        assert lo <= point <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # 20x the images: the interval shrinks about sqrt(20) times


def test_mean_auc_and_balanced_accuracy():
    real = np.array([0.1, 0.2, 0.3, 0.4])
    point, lo, hi = bootstrap_mean_auc(real, {"a": np.array([0.9, 0.8]), "b": np.array([0.0, 0.05])}, rounds=200)
    assert point == pytest.approx(0.5)  # one generator perfectly separated, one perfectly inverted
    assert lo <= point <= hi
    assert balanced_accuracy([0, 0, 1, 1], [0.1, 0.7, 0.8, 0.2], 0.5) == pytest.approx(0.5)


def test_paired_difference_sees_a_small_gain_that_separate_intervals_cannot():
    """Scorer b = a plus a small shift on the fakes: the two AUC intervals overlap, the paired one excludes 0."""
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(200, int), np.ones(200, int)]
    a = rng.normal(size=400) + 0.8 * y
    b = a + 0.15 * y
    auc_a, auc_b = bootstrap_auc(y, a), bootstrap_auc(y, b)
    assert auc_b[1] < auc_a[2]  # separate intervals overlap
    diff, lo, hi = bootstrap_auc_difference(y, b, a)
    assert diff == pytest.approx(auc_b[0] - auc_a[0]) and 0 < lo <= diff <= hi
    assert bootstrap_auc_difference(y, a, a) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="one score per label"):
        bootstrap_auc_difference(y, a, a[:-1])


def test_repeated_scores_of_one_image_are_resampled_as_one():
    """Eight photos scored seven times each (once per fold) are eight photos: resampling rows would give an interval
    as narrow as 56 photos'; resampling the images gives one as wide as eight photos' own."""
    rng = np.random.default_rng(2)
    photos = rng.normal(0, 1, 8)
    real = np.repeat(photos, 7) + rng.normal(0, 0.05, 56)
    fake = rng.normal(1, 1, 300)
    y = np.r_[np.zeros(56, int), np.ones(300, int)]
    s = np.r_[real, fake]
    image = np.r_[np.repeat(np.arange(8), 7), 100 + np.arange(300)]
    rows = bootstrap_auc(y, s, rounds=400)
    images = bootstrap_auc(y, s, rounds=400, clusters=image)
    once = bootstrap_auc(np.r_[np.zeros(8, int), np.ones(300, int)], np.r_[photos, fake], rounds=400)
    assert images[0] == rows[0]  # the point estimate does not change
    assert images[2] - images[1] > 1.5 * (rows[2] - rows[1])
    assert images[2] - images[1] == pytest.approx(once[2] - once[1], rel=0.35)
    unique = np.arange(len(y))  # one row per image: the same kind of interval as plain resampling
    assert bootstrap_auc(y, s, rounds=400, clusters=unique)[1] == pytest.approx(rows[1], abs=0.03)
    with pytest.raises(ValueError, match="one id per scored row"):
        bootstrap_auc(y, s, clusters=image[:-1])
    diff = bootstrap_auc_difference(y, s, s + 0.1 * y, rounds=200, clusters=image)
    assert diff[1] <= diff[0] <= diff[2] < 0
