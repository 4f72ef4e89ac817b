"""The high-fidelity autoencoder family: architecture axes, VQ bottleneck, training losses, TAESana decoder, CLI."""

import json
import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open

from nirnet._atomic import atomic_write_text
from nirnet.imprint.autoencoders import taesana_decoder
from nirnet.imprint.ours import HIFI_AE_CONFIGS, AEConfig, SmallAutoencoder
from nirnet.imprint.train_ae import AETrainConfig, heldout_crops, heldout_psnr, laplacian, train_autoencoder


def _photos(folder, n=12, size=80, seed=0):
    """Smooth random images with some texture: learnable, but not trivial."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = rng.random((size // 8, size // 8, 3))
        img = np.kron(base, np.ones((8, 8, 1))) * 0.8 + rng.random((size, size, 3)) * 0.2
        Image.fromarray((img * 255).astype(np.uint8)).save(folder / f"img_{i:03d}.png")
    return sorted(folder.glob("*.png"))


@pytest.mark.parametrize("config", HIFI_AE_CONFIGS, ids=lambda c: c.name)
def test_hifi_configs_build_and_keep_shape(config):
    ae = SmallAutoencoder(config).eval()
    x = torch.rand(1, 3, 40, 52)
    assert ae.reconstruct(x).shape == x.shape
    size_mb = sum(p.numel() for p in ae.parameters()) * 4 / 2**20
    assert size_mb <= 5, f"{config.name}: {size_mb:.1f} MB of float32 weights"


def test_hifi_family_covers_the_axes():
    configs = HIFI_AE_CONFIGS
    assert len(configs) >= 6
    assert {c.upsample for c in configs} == {"nearest", "deconv", "pixelshuffle", "bilinear"}
    assert {4, 16, 32} <= {c.latent_channels for c in configs}
    assert {8, 16} <= {c.stride for c in configs}
    assert {c.norm for c in configs} == {"none", "group"}
    assert {"kl", "vq"} <= {c.bottleneck for c in configs}


def test_vq_latent_is_made_of_codebook_vectors():
    config = AEConfig("vq", stride=4, channels=8, latent_channels=8, vq_codes=16, vq_dim=4, shortcut=True)
    ae = SmallAutoencoder(config).eval()
    z = ae.encode(torch.rand(2, 3, 16, 16))
    vectors = ae.quantizer.flat(z)  # groups x positions x dim
    is_code = (vectors[:, :, None, :] == ae.quantizer.codebook[:, None, :, :]).all(-1).any(-1)
    assert is_code.all()


def test_config_rejects_kl_and_vq_together():
    with pytest.raises(ValueError, match="KL or VQ"):
        AEConfig("x", kl=True, vq_codes=8)
    with pytest.raises(ValueError, match="norm"):
        AEConfig("x", norm="batch")


def test_legacy_checkpoint_layout_is_unchanged():
    # The shipped legacy files were saved before the new axes existed: same keys as then.
    ae = SmallAutoencoder(AEConfig("t", stride=8, upsample="nearest", channels=8))
    assert not any("quantizer" in k or "body" in k for k in ae.state_dict())
    assert len(ae.decoder) == 2 + 3 * 4 + 1


def test_laplacian_sees_only_detail():
    flat = torch.full((1, 3, 10, 10), 0.3)
    assert laplacian(flat).abs().max() < 1e-6
    assert laplacian(torch.rand(1, 3, 10, 10)).abs().mean() > 0.1


@pytest.mark.parametrize("bottleneck", ["kl", "vq"])
def test_training_with_all_losses_improves_heldout_psnr(tmp_path, bottleneck):
    paths = _photos(tmp_path / "photos")
    config = AEConfig(
        "t", stride=4, upsample="deconv", channels=16, latent_channels=8, norm="group", res_blocks=1,
        kl=bottleneck == "kl", vq_codes=32 if bottleneck == "vq" else 0, vq_dim=2, shortcut=True,
    )  # fmt: skip
    held = heldout_crops(paths[-3:], crop=48)
    before = heldout_psnr(SmallAutoencoder(config).eval(), held)
    settings = AETrainConfig(steps=60, batch_size=4, crop=32, lr=3e-3, hf_weight=1.0, adv_weight=0.05, adv_start=0.5)
    model, metrics = train_autoencoder(config, paths[:-3], settings)
    after = heldout_psnr(model, held)
    assert after > before + 3, (before, after)
    assert metrics["adv_weight"] == 0.05 and np.isfinite(metrics["train_psnr_db"])


def test_saved_autoencoder_records_how_it_was_trained(tmp_path):
    ae = SmallAutoencoder(AEConfig("t", stride=4, channels=8))
    path = ae.save(tmp_path / "t.safetensors", {"steps": 7})
    with safe_open(str(path), framework="pt") as handle:
        assert json.loads(handle.metadata()["nirnet_training"]) == {"steps": 7}
    torch.testing.assert_close(SmallAutoencoder.load(path).reconstruct(torch.rand(1, 3, 8, 8)).shape, (1, 3, 8, 8))


def test_taesana_decoder_upsamples_32x():
    decoder = taesana_decoder(latent=32)
    assert decoder(torch.zeros(1, 32, 2, 3)).shape == (1, 3, 64, 96)


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_train_ae_cli_never_writes_into_the_package(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from nirnet.cli.main import app
    from nirnet.imprint.ours import SHIPPED_DIR

    _photos(tmp_path / "photos", n=16)
    before = sorted(p.name for p in SHIPPED_DIR.iterdir())
    monkeypatch.chdir(tmp_path)
    args = [
        "imprint",
        "train-ae",
        "photos",
        "--family",
        "legacy",
        "--name",
        "deconv_s4",
        "--steps",
        "3",
        "--crop",
        "32",
        "--eval-crop",
        "64",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "autoencoders" / "deconv_s4.safetensors").is_file()
    report = json.loads((tmp_path / "runs" / "autoencoders" / "report.json").read_text())
    assert "heldout_psnr_db" in report["deconv_s4"]
    assert sorted(p.name for p in SHIPPED_DIR.iterdir()) == before


def test_train_ae_cli_unknown_name_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from nirnet.cli.main import app

    result = CliRunner().invoke(app, ["imprint", "train-ae", str(tmp_path), "--name", "nope"])
    assert result.exit_code == 2 and "no config named nope" in result.output
    assert "Traceback" not in result.output
