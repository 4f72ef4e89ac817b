import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from nirnet.eval.stats import _auc_of, balanced_accuracy, bootstrap_auc, bootstrap_mean_auc


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
