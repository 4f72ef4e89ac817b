from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from nirnet.data.degrade import DegradeConfig, DegradeParams, SharpnessConfig
from nirnet.data.pairs import CROP_MARGIN, PairConfig, PairDataset
from nirnet.data.transforms import PreprocessConfig
from nirnet.eval.sanity import blockiness
from nirnet.imprint.bank import ImprintBank
from nirnet.imprint.fusion import ImprintSimulator, SimulatorConfig
from nirnet.testing import synthetic_photo


class RecordingSimulator(torch.nn.Module):
    """The shipped simulator, remembering the size of every region it was asked to stamp."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = ImprintSimulator(ImprintBank.load(), SimulatorConfig(models_per_sample=2))
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x, generator=None):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.inner(x, generator)


def _photos(tmp_path, n=3):
    paths = []
    for i in range(n):
        path = tmp_path / f"{i}.png"
        Image.fromarray(synthetic_photo(400, 420, seed=i)).save(path)
        paths.append(path)
    return paths


def test_region_covers_the_crop_at_every_resize_scale():
    cfg = PairConfig(crop_size=64, degrade=DegradeConfig(resize_prob=1.0, resize_scale=(0.5, 1.5)))
    assert cfg.region_for(DegradeParams(crop_size=64)) == 64 + CROP_MARGIN
    for scale in (0.5, 0.77, 1.0, 1.3, 1.5):
        region = cfg.region_for(DegradeParams(resize_scale=scale, crop_size=64))
        assert round(region * scale) >= 64 + CROP_MARGIN  # after the resize, the crop and its margin fit
    assert cfg.largest_region(cfg.read()) == cfg.region_for(DegradeParams(resize_scale=0.5, crop_size=64)) == 144


def test_simulator_pairs_are_aligned_deterministic_and_only_as_large_as_needed(tmp_path):
    degrade = DegradeConfig(jpeg_prob=0.5, resize_prob=0.5, resize_scale=(0.75, 1.25))
    simulator = RecordingSimulator()
    data = PairDataset(_photos(tmp_path), PairConfig(crop_size=64, p_simulator=1.0, degrade=degrade), simulator)
    keys = [(step, slot) for step in range(4) for slot in range(4)]
    items = [data[key] for key in keys]
    for pair, kind in items:
        assert pair.shape == (2, 3, 64, 64) and pair.dtype == torch.uint8
        assert PairDataset.KINDS[kind] == "simulator"
        assert not torch.equal(pair[0], pair[1])  # the fake carries an imprint
    again, _ = data[keys[5]]
    assert torch.equal(again, items[5][0])
    # Without a resize only the crop plus its margin is simulated, never the worst-case region.
    assert (64 + CROP_MARGIN, 64 + CROP_MARGIN) in simulator.sizes
    assert max(h for h, _ in simulator.sizes) <= data.region
    assert np.mean([h * w for h, w in simulator.sizes]) < data.region**2


def _jpeg_photos(tmp_path, n=3, quality=60):
    paths = []
    for i in range(n):
        path = tmp_path / f"{i}.jpg"
        Image.fromarray(synthetic_photo(400, 420, seed=i)).save(path, quality=quality)
        paths.append(path)
    return paths


def test_jpeg_history_roundtrip(tmp_path):
    from nirnet.data.degrade import apply_jpeg_history, read_jpeg_history

    path = _jpeg_photos(tmp_path, n=1, quality=70)[0]
    history = read_jpeg_history(path)
    with Image.open(path) as original:
        assert history is not None and list(history.qtables[0]) == list(original.quantization[0])
    assert read_jpeg_history(_photos(tmp_path, n=1)[0]) is None  # a PNG has no JPEG history
    twin = apply_jpeg_history(Image.fromarray(synthetic_photo(64, 64, seed=5)), history)
    # Re-encoding with the same tables is (nearly) idempotent: the twin now sits on the photo's quantisation grid.
    again = apply_jpeg_history(twin, history)
    assert np.abs(np.asarray(again, dtype=float) - np.asarray(twin, dtype=float)).mean() < 1.0
    assert apply_jpeg_history(twin, None) is twin


def _image(crop: torch.Tensor) -> Image.Image:
    return Image.fromarray(crop.permute(1, 2, 0).numpy())


class BlurTwin(torch.nn.Module):
    """A grid-free stand-in for a decoder (a 3x3 box blur), so that any 8x8 grid in its twin came from history
    matching and not from an imprint's own decoder grid."""

    def forward(self, x, generator=None):
        blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
        return SimpleNamespace(images=blurred)


def test_twins_get_the_photo_compression_grid(tmp_path, monkeypatch):
    """A twin of a JPEG photo carries the photo's 8x8 grid at the same phase once history matching is on."""
    from nirnet.data import degrade as degrade_module

    apply = degrade_module.apply  # no final crop: the pair keeps the 16-px aligned phase it was cut at
    monkeypatch.setattr(degrade_module, "apply", lambda img, params: apply(img, replace(params, crop_size=None)))
    degrade = DegradeConfig(jpeg_prob=0.0, blur_prob=0.0, resize_prob=0.0)
    paths = _jpeg_photos(tmp_path, quality=50)
    simulator = BlurTwin()
    grids = {}
    for match in (False, True):
        cfg = PairConfig(crop_size=64, p_simulator=1.0, degrade=degrade, match_history=match)
        data = PairDataset(paths, cfg, simulator)
        pairs = [data[(0, slot)][0] for slot in range(6)]
        grids[match] = (
            np.mean([blockiness(_image(p[0])) for p in pairs]),
            np.mean([blockiness(_image(p[1])) for p in pairs]),
        )
    real_grid = grids[True][0]
    assert real_grid > 1.1  # the photos have a visible grid at phase 0: crops are 16-px aligned
    assert grids[False][1] < real_grid - 0.05  # without matching, the twin lost it
    assert abs(grids[True][1] - real_grid) < abs(grids[False][1] - real_grid) / 2


def test_autoencoder_twins_are_mixed_with_their_photo(tmp_path):
    """ae_mix: an autoencoder twin is x + lambda (D(E(x)) - x); with lambda fixed at 0.5 and every other step off,
    the fake half of the pair is exactly that mix."""
    from nirnet.data.degrade import SharpnessConfig
    from nirnet.data.recon_cache import ReconEntry

    photo = tmp_path / "photo.png"
    recon = tmp_path / "recon.png"
    Image.fromarray(synthetic_photo(64, 64, seed=1)).save(photo)
    Image.fromarray(synthetic_photo(64, 64, seed=2)).save(recon)
    entry = ReconEntry(photo, (0, 0, 64, 64), {"toy": recon})
    degrade = DegradeConfig(jpeg_prob=0.0, blur_prob=0.0, resize_prob=0.0)  # a 64 px crop of a 64 px pair
    cfg = PairConfig(
        crop_size=64, p_simulator=0.0, degrade=degrade, match_sharpness=False,
        sharpness=SharpnessConfig(prob=0.0), ae_mix=(0.5, 0.5),
    )  # fmt: skip
    pair, kind = PairDataset([photo], cfg, recon_cache={"p": entry})[(0, 0)]
    assert PairDataset.KINDS[kind] == "autoencoder"
    x = np.asarray(Image.open(photo), dtype=np.float32)
    expected = np.clip(np.round(x + 0.5 * (np.asarray(Image.open(recon), dtype=np.float32) - x)), 0, 255)
    np.testing.assert_array_equal(pair[1].permute(1, 2, 0).numpy(), expected.astype(np.uint8))


def test_sharpness_jitter_blurs_and_sharpens():
    from nirnet.data.degrade import SharpnessConfig, sharpness_jitter

    img = Image.fromarray(synthetic_photo(64, 64, seed=1))
    rng = np.random.default_rng(0)
    outs = [np.asarray(sharpness_jitter(img, SharpnessConfig(prob=1.0), rng), dtype=float) for _ in range(20)]
    lap = [np.abs(np.diff(o, 2, axis=1)).mean() for o in outs]
    base = np.abs(np.diff(np.asarray(img, dtype=float), 2, axis=1)).mean()
    assert min(lap) < base < max(lap)  # some blurred, some sharpened
    assert sharpness_jitter(img, SharpnessConfig(prob=0.0), rng) is img


def test_match_sharpness_meets_the_photo_from_both_sides():
    from nirnet.data.degrade import gaussian_blur, match_sharpness, sharpness_score

    photo = Image.fromarray(synthetic_photo(96, 96, seed=3))
    noisy = np.clip(np.asarray(photo, dtype=float) + np.random.default_rng(0).normal(0, 4, (96, 96, 3)), 0, 255)
    for twin in (gaussian_blur(photo, 0.6), Image.fromarray(noisy.astype(np.uint8))):  # smoother, then noisier
        before = abs(sharpness_score(twin) - sharpness_score(photo))
        after = abs(sharpness_score(match_sharpness(twin, photo)) - sharpness_score(photo))
        assert before > 0.1 and after < 0.02


def test_match_noise_floor_restores_lost_sensor_noise():
    from nirnet.data.degrade import gaussian_blur, match_noise_floor, noise_floor

    rng = np.random.default_rng(0)
    clean = np.asarray(Image.fromarray(synthetic_photo(128, 128, seed=4)), dtype=float)
    photo = Image.fromarray(np.clip(clean + rng.normal(0, 5, clean.shape), 0, 255).astype(np.uint8))
    twin = gaussian_blur(photo, 1.0)  # a reconstruction that lost the noise
    assert noise_floor(twin) < 0.5 * noise_floor(photo)
    matched = match_noise_floor(twin, photo, rng)
    assert abs(noise_floor(matched) - noise_floor(photo)) < 0.15 * noise_floor(photo)
    assert match_noise_floor(photo, twin, rng) is photo  # never removes noise


def test_simulated_region_covers_the_crop_at_the_model_input_scale():
    # a model reading at 0.5x needs twice the pixels simulated for its crop, at 2x half of them
    cfg = PairConfig(degrade=DegradeConfig(resize_prob=0.0))
    native, half, double = (cfg.largest_region(PreprocessConfig(crop_size=64, input_scale=s)) for s in (1, 0.5, 2))
    assert half == 2 * native and double == native // 2
    # data.pairs.input_scale reads training images at another scale than the model; its crop size cannot differ
    model = PreprocessConfig(crop_size=64, input_scale=1.5)
    assert PairConfig(input_scale=1.0).read(model) == model.replace(input_scale=1.0)
    assert PairConfig().read(model) == PairConfig(crop_size=64).read(model) == model
    with pytest.raises(ValueError, match="data.pairs.crop_size is 128 but the model reads 64 px"):
        PairConfig(crop_size=128).read(model)


def test_generated_pairs_are_matched_in_fineness_and_noise_when_asked(tmp_path):
    from nirnet.data.degrade import gaussian_blur, noise_floor, sharpness_score

    # noisy photos against clean, smooth "generated" images: both plain cues a probe found in the training pairs
    rng = np.random.default_rng(0)
    photos, fakes = [], []
    for i in range(3):
        clean = synthetic_photo(300, 300, seed=i).astype(float)
        photos.append(tmp_path / f"photo{i}.png")
        Image.fromarray(np.clip(clean + rng.normal(0, 6, clean.shape), 0, 255).astype(np.uint8)).save(photos[-1])
        fakes.append(tmp_path / f"fake{i}.png")
        gaussian_blur(Image.fromarray(synthetic_photo(300, 300, seed=10 + i)), 1.2).save(fakes[-1])
    degrade_config = DegradeConfig(jpeg_prob=0.0, blur_prob=0.0, resize_prob=0.0)
    gaps = {}
    for match in (False, True):
        config = PairConfig(
            crop_size=64,
            p_generated=1.0,
            degrade=degrade_config,
            sharpness=SharpnessConfig(prob=0.0),
            match_generated=match,
        )
        data = PairDataset(photos, config, ImprintSimulator(ImprintBank.load()), generated_paths=fakes, seed=0)
        noise, fine = [], []
        for key in range(8):
            real, fake, kind, source = data.pair((0, key))
            assert kind == "generated" and source in fakes and real.size == fake.size == (64, 64)
            noise.append(abs(np.log(noise_floor(fake) / noise_floor(real))))
            fine.append(abs(sharpness_score(fake) - sharpness_score(real)))
        gaps[match] = (float(np.mean(noise)), float(np.mean(fine)))
    assert gaps[False][0] > 0.5, gaps  # unmatched: the fake is visibly cleaner
    assert gaps[True][0] < 0.5 * gaps[False][0] and gaps[True][1] < gaps[False][1], gaps


def test_colour_noise_breaks_up_a_palette():
    from nirnet.data.degrade import match_noise_floor

    rng = np.random.default_rng(0)
    photo = Image.fromarray(np.clip(rng.normal(128, 6, (64, 64, 3)), 0, 255).astype(np.uint8))
    flat = Image.new("RGB", (64, 64), (90, 120, 200))  # one colour, as a palette-quantised area
    grey = np.asarray(match_noise_floor(flat, photo, rng), dtype=int)
    colour = np.asarray(match_noise_floor(flat, photo, rng, colour=True), dtype=int)
    # grey noise moves the three channels together; per-channel noise moves them apart
    assert (np.diff(grey - [90, 120, 200], axis=2) == 0).mean() > 0.99
    assert (np.diff(colour - [90, 120, 200], axis=2) == 0).mean() < 0.5
