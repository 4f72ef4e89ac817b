import numpy as np
import pytest
from PIL import Image

from nirnet.data import degrade
from nirnet.testing import synthetic_photo


@pytest.fixture
def photo():
    return Image.fromarray(synthetic_photo(120, 160, seed=1))


def test_jpeg_changes_pixels_and_keeps_size(photo):
    out = degrade.jpeg(photo, 50)
    assert out.size == photo.size and out.mode == "RGB"
    diff = np.abs(np.asarray(out, int) - np.asarray(photo, int)).mean()
    assert 0.5 < diff < 20
    assert np.abs(np.asarray(degrade.jpeg(photo, 95), int) - np.asarray(photo, int)).mean() < diff


def test_blur_reduces_high_frequencies():
    noise = np.random.default_rng(0).normal(128, 30, (64, 64, 3)).clip(0, 255).astype(np.uint8)
    arr = noise.astype(float)
    out = np.asarray(degrade.gaussian_blur(Image.fromarray(noise), 2.0), float)
    assert np.abs(np.diff(out, axis=1)).mean() < 0.3 * np.abs(np.diff(arr, axis=1)).mean()
    assert (
        np.abs(np.diff(out, axis=1)).mean()
        > np.abs(np.diff(np.asarray(degrade.gaussian_blur(Image.fromarray(noise), 4.0), float), axis=1)).mean()
    )


def test_resize_sizes(photo):
    assert degrade.resize(photo, 0.5).size == (80, 60)
    assert degrade.resize(photo, 1.5).size == (240, 180)


def test_crop_pads_small_images():
    small = Image.fromarray(synthetic_photo(20, 30))
    out = degrade.crop(small, 64)
    assert out.size == (64, 64)
    np.testing.assert_array_equal(np.asarray(out)[:20, :30], np.asarray(small))


def test_center_crop_caps_sides(photo):
    assert degrade.center_crop(photo, 100).size == (100, 100)
    assert degrade.center_crop(photo, 512).size == photo.size


def test_paired_same_draw_same_processing(photo):
    cfg = degrade.DegradeConfig(jpeg_prob=1, blur_prob=1, resize_prob=1)
    params = degrade.sample_params(cfg, np.random.default_rng(3), crop_size=64)
    a, b = degrade.apply_paired(photo, photo.copy(), params)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert a.size == (64, 64)


def test_paired_rejects_size_mismatch(photo):
    with pytest.raises(ValueError):
        degrade.apply_paired(photo, photo.resize((10, 10)), degrade.DegradeParams())


def test_sample_params_is_seeded():
    cfg = degrade.DegradeConfig()
    a = degrade.sample_params(cfg, np.random.default_rng(7))
    b = degrade.sample_params(cfg, np.random.default_rng(7))
    assert a == b
