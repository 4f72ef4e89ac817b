"""Balanced sampling by generator family and real source, and leaving families out of training."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nirnet.data.balance import family_weights, source_weights
from nirnet.data.families import family_of
from nirnet.data.pairs import PairDataset, _draw, _probabilities
from nirnet.data.transforms import PreprocessConfig
from nirnet.engine.config import load_config
from nirnet.engine.train import build_dataset, generated_samples, sampling_weights, training_images
from nirnet.testing import synthetic_photo, write_labelled_dataset


def test_every_family_gets_the_same_total_weight_and_small_ones_less():
    generators = ["sdxl"] * 30 + ["anime"] * 10 + ["gpt4o"] * 8 + ["sana"] * 2
    weights = np.array(family_weights(generators, min_images=8))
    totals = Counter()
    for g, w in zip(generators, weights):
        totals[family_of(g)] += w
    assert totals["sdxl"] == pytest.approx(1.0) and totals["gpt4o"] == pytest.approx(1.0)  # anime is sdxl's family
    assert totals["sana"] == pytest.approx(2 / 8)


def test_every_real_source_folder_gets_the_same_total_weight():
    paths = [Path("a") / f"{i}.jpg" for i in range(90)] + [Path("b") / f"{i}.jpg" for i in range(10)]
    weights = np.array(source_weights(paths))
    assert weights[:90].sum() == pytest.approx(weights[90:].sum())


def test_weighted_draw_follows_the_weights_and_uniform_draw_is_unchanged():
    paths = [Path(str(i)) for i in range(4)]
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert [_draw(paths, None, rng_a) for _ in range(20)] == [paths[int(rng_b.integers(4))] for _ in range(20)]
    cumulative = _probabilities([0.7, 0.1, 0.2, 0.0], 4, "w")
    rng = np.random.default_rng(0)
    counts = Counter(_draw(paths, cumulative, rng) for _ in range(20000))
    assert counts[paths[3]] == 0 and abs(counts[paths[0]] / 20000 - 0.7) < 0.02
    with pytest.raises(ValueError, match="non-negative"):
        _probabilities([1.0, -1.0], 2, "w")


def _corpus(root: Path) -> Path:
    """A built-corpus-like dataset: 6 sdxl, 2 anime (family sdxl), 4 gpt4o images, 3 real photos."""
    rows = [("sdxl", 1)] * 6 + [("anime", 1)] * 2 + [("gpt4o", 1)] * 4 + [("real", 0)] * 3
    images = [(gen, label, Image.fromarray(synthetic_photo(72, 72, seed=i))) for i, (gen, label) in enumerate(rows)]
    return write_labelled_dataset(root, images)


def _config(tmp_path: Path, *extra: str):
    corpus = _corpus(tmp_path / "corpus")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        Image.fromarray(synthetic_photo(72, 72, seed=100 + i)).save(photos / f"p{i}.png")
    return load_config(
        None,
        [
            "model=test_nirnet",
            f"data.real=[{photos},{corpus}]",
            f"data.generated=[{corpus}]",
            "data.pairs.p_generated=1.0",
            "data.pairs.p_simulator=0.0",
            f"run.out_dir={tmp_path / 'run'}",
            *extra,
        ],
    )


def test_excluded_families_are_not_trained_on(tmp_path):
    config = _config(tmp_path, "data.exclude_families=[sdxl]")
    assert {s.subset for s in generated_samples(config)} == {"gpt4o"}  # anime goes with its family
    real, fake, _, _ = training_images(config)
    assert len(fake) == 4 and len(real) == 8  # the corpus's real rows count as real photos


def test_balanced_dataset_draws_families_evenly(tmp_path):
    config = _config(tmp_path, "data.balance=true", "data.min_family_images=1")
    real, fake, _, _ = training_images(config)
    real_w, fake_w = sampling_weights(config, real, fake, generated_samples(config))
    by_family = Counter()
    for path, w in zip(fake, fake_w):
        by_family["gpt4o" if "gpt4o" in path.name else "sdxl"] += w
    assert by_family["gpt4o"] == pytest.approx(by_family["sdxl"])
    assert sum(real_w[:5]) == pytest.approx(sum(real_w[5:]))  # the photos folder against the corpus's real/real
    dataset = build_dataset(config, PreprocessConfig(crop_size=64))
    assert isinstance(dataset, PairDataset) and dataset.generated_weights is not None
    unbalanced = build_dataset(_config(tmp_path / "u"), PreprocessConfig(crop_size=64))
    assert unbalanced.generated_weights is None and unbalanced.real_weights is None
