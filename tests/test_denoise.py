"""Denoising pretraining of the noise extractor: it learns to denoise, its statistics tell noise from scene, and a
detector run starts from its weights."""

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.engine.config import load_config
from nirnet.engine.denoise import (
    DenoiseConfig,
    denoising_psnr,
    noise_map_stats,
    pretrain_denoiser,
    save_denoiser,
)
from nirnet.engine.train import SetupError, build_step_module, check_inputs, train
from nirnet.imprint.bank import BankEntry, ImprintBank
from nirnet.imprint.laplace import LearnedLaplace
from nirnet.models import create_model
from nirnet.testing import synthetic_photo


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    for i in range(8):
        Image.fromarray(synthetic_photo(96, 96, seed=i)).save(root / f"{i}.png")
    return sorted(root.glob("*.png"))


@pytest.fixture(scope="module")
def denoiser(photos):
    config = DenoiseConfig(width=4, depth=3, crop=32, crops_per_image=4, steps=150, batch_size=16, lr=5e-3)
    extractor, metrics = pretrain_denoiser(photos, config)
    return extractor, config, metrics


def test_pretraining_learns_to_denoise(photos, denoiser):
    from nirnet.data.pool import crop_pool

    extractor, _, _ = denoiser
    crops = crop_pool(photos, 64, seed=1)
    trained = denoising_psnr(extractor, crops, sigma=20)
    assert trained["denoised_db"] > trained["noisy_db"] + 1.5, trained  # removes noise instead of adding it
    untrained = denoising_psnr(type(extractor)(4, 3), crops, sigma=20)
    assert trained["denoised_db"] > untrained["denoised_db"] + 1.5


def test_noise_map_stats_tell_noise_from_scene():
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8).repeat_interleave(8, -1).repeat_interleave(8, -2)  # blocky scenes
    images = torch.nn.functional.avg_pool2d(images, 5, 1, 2)
    white = noise_map_stats(images, torch.randn(2, 3, 64, 64))
    assert white["edge_correlation"] < 0.1 and 0.03 < white["low_freq_share"] < 0.08
    # A map that is the scene's high-pass (what a shallow extractor tends to output) carries the scene.
    lap = images - torch.nn.functional.avg_pool2d(images, 3, 1, 1, count_include_pad=False)
    scene = noise_map_stats(images, lap)
    assert scene["edge_correlation"] > 0.5 and scene["edge_correlation"] > 5 * white["edge_correlation"]


def _train_overrides(photos, out, init, extra=()):
    return [
        "model=test_nirnet",
        f"data.real=[{photos[0].parent}]",
        "data.bank=none",
        "data.pairs.p_simulator=0",
        "data.pairs.p_generated=0",
        "model_overrides.crop_size=64",
        "model_overrides.lambda_da=0",
        f"init.noise_extractor={init}",
        "optim.steps=1",
        "optim.batch_pairs=2",
        "optim.warmup=1",
        f"run.out_dir={out}",
        "run.workers=0",
        *extra,
    ]


def test_training_starts_from_the_pretrained_extractor(photos, denoiser, tmp_path):
    extractor, config, metrics = denoiser
    save_denoiser(extractor, config, {"train": metrics}, tmp_path / "dn")
    saved = load_file(str(tmp_path / "dn" / "denoiser.safetensors"))
    overrides = _train_overrides(photos, tmp_path / "run", tmp_path / "dn", ["model_overrides.noise_width=4"])
    cfg = load_config(None, overrides)
    model, _ = build_step_module(cfg, torch.device("cpu"))
    for key, value in model.imprint.extractor.state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0, msg=key)
    # A different shape is refused in one line naming the settings to change.
    wrong = load_config(
        None, _train_overrides(photos, tmp_path / "run2", tmp_path / "dn", ["model_overrides.noise_width=6"])
    )
    with pytest.raises(SetupError, match="noise_width/noise_depth"):
        build_step_module(wrong, torch.device("cpu"))
    # A missing file is caught before any work, with the command that makes it.
    missing = load_config(None, _train_overrides(photos, tmp_path / "run3", tmp_path / "nowhere"))
    with pytest.raises(SetupError, match="nirnet pretrain-denoiser"):
        check_inputs(missing)
    with pytest.raises(SetupError):
        train(missing, show_progress=False)


def test_cli_pretrains_and_reports(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(30):  # enough names for the SHA-1 hold-out rule to put some on each side
        Image.fromarray(synthetic_photo(140, 140, seed=i)).save(folder / f"{i}.png")
    out = tmp_path / "dn"
    args = ["pretrain-denoiser", str(folder), "--out", str(out), "--width", "4", "--depth", "3", "--steps", "3"]
    result = CliRunner().invoke(app, [*args, "--batch-size", "4", "--crop", "32"])
    assert result.exit_code == 0, result.output
    assert (out / "denoiser.safetensors").is_file() and (out / "denoiser.json").is_file()
    bad = CliRunner().invoke(app, ["pretrain-denoiser", str(tmp_path / "none")])
    message = " ".join(bad.output.split())
    assert bad.exit_code == 2 and "does not exist" in message and "Traceback" not in message


def test_a_frozen_extractor_stays_the_pretrained_denoiser(photos, denoiser, tmp_path):
    extractor, config, metrics = denoiser
    save_denoiser(extractor, config, {"train": metrics}, tmp_path / "dn")
    saved = load_file(str(tmp_path / "dn" / "denoiser.safetensors"))
    bank = ImprintBank([BankEntry("toy", 4)], [LearnedLaplace(4)])
    bank.save(tmp_path / "bank.safetensors")
    extra = [
        "model_overrides.noise_width=4",
        "model_overrides.noise_frozen=true",
        "optim.steps=2",
        f"data.bank={tmp_path / 'bank.safetensors'}",
        "data.pairs.p_simulator=1.0",
    ]
    final = train(load_config(None, _train_overrides(photos, tmp_path / "run", tmp_path / "dn", extra)), False)
    trained = load_file(str(final / "model.safetensors"))
    for key, value in saved.items():  # weights and BatchNorm statistics unchanged after training steps
        torch.testing.assert_close(trained[f"imprint.extractor.{key}"], value, rtol=0, atol=0, msg=key)
    fresh = create_model("test_nirnet", noise_width=4, noise_frozen=True, lambda_da=0, crop_size=64)
    assert not any(p.requires_grad for p in fresh.imprint.extractor.parameters())
    assert not fresh.train().imprint.extractor.training  # BatchNorm stays in inference mode
    encoder = {k: v for k, v in trained.items() if k.startswith("imprint.encoder.") and v.is_floating_point()}
    initial = fresh.state_dict()
    assert any(not torch.equal(v, initial[k]) for k, v in encoder.items())  # the encoder behind it did learn
