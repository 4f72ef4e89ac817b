"""Slow integration test: on real training photos, plain statistics cannot tell a photo from its simulated twin
once shortcut removal is on, and can when it is off (so the test can fail). The full report with autoencoder twins
and bootstrap intervals is `benchmarks/pair_probes.py`."""

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from nirnet.data.datasets import real_image_paths
from nirnet.data.degrade import SharpnessConfig, noise_floor, sharpness_score
from nirnet.data.pairs import PairConfig, PairDataset
from nirnet.imprint.bank import ImprintBank
from nirnet.imprint.fusion import ImprintSimulator, SimulatorConfig

pytestmark = [pytest.mark.slow, pytest.mark.shared]


def _aucs(config: PairConfig, paths, pairs: int = 80) -> dict[str, float]:
    simulator = ImprintSimulator(ImprintBank.load(), SimulatorConfig(models_per_sample=2))
    data = PairDataset(paths, config, simulator, seed=0)
    stats = {"sharpness": ([], []), "noise": ([], [])}
    for key in range(pairs):
        pair, _ = data[(key // 16, key % 16)]
        for half, crop in enumerate(pair):
            img = Image.fromarray(crop.permute(1, 2, 0).numpy())
            stats["sharpness"][half].append(sharpness_score(img))
            stats["noise"][half].append(np.log(noise_floor(img) + 1e-3))
    labels = np.r_[np.zeros(pairs), np.ones(pairs)]
    return {name: roc_auc_score(labels, np.r_[real, fake]) for name, (real, fake) in stats.items()}


def test_simulated_twins_carry_no_sharpness_or_noise_label(shared_data):
    paths = real_image_paths([shared_data / "real-train"])
    on = PairConfig(crop_size=256, p_simulator=1.0)
    off = replace(on, match_history=False, match_sharpness=False, sharpness=SharpnessConfig(prob=0.0))
    with_removal, without = _aucs(on, paths), _aucs(off, paths)
    assert without["noise"] > 0.56, without  # the shortcut exists: simulated twins are noisier
    for name, auc in with_removal.items():
        assert abs(auc - 0.5) < 0.1, (name, with_removal)
