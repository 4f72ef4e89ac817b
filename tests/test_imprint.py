import math

import numpy as np
import pytest
import torch

from nirnet.imprint.autoencoders import TAEAutoencoder, create_autoencoder, find_weights, list_autoencoders
from nirnet.imprint.bank import BankEntry, ImprintBank
from nirnet.imprint.fusion import ImprintSimulator, SimulatorConfig, extrapolate
from nirnet.imprint.laplace import (
    ClosedFormGaussian,
    ClosedFormLaplace,
    LearnedLaplace,
    evaluate_nll,
    fit_learned_laplace,
    image_cells,
    sample_laplace,
)
from nirnet.imprint.ours import AEConfig, SmallAutoencoder
from nirnet.imprint.residuals import cached_residuals, residuals


def _periodic_residuals(n=64, size=32, stride=4, seed=0):
    """Images and residuals whose Laplace location depends on the grid phase and scale on brightness."""
    g = torch.Generator().manual_seed(seed)
    # smooth content (as in photos): brightness varies over 8x8 blocks
    x = torch.nn.functional.interpolate(torch.rand(n, 3, size // 8, size // 8, generator=g), scale_factor=8)
    pattern = torch.randn(3, stride, stride, generator=torch.Generator().manual_seed(99)) * 0.02
    mu = pattern.repeat(1, size // stride, size // stride)[None]
    b = 0.002 + 0.02 * x  # content-dependent scale: only a learned model can capture it
    return x, sample_laplace(mu.expand_as(x), b, g), pattern


def test_closed_form_recovers_pattern():
    x, r, pattern = _periodic_residuals(n=256)
    model = ClosedFormLaplace.fit(r, 4)
    assert (model.mu - pattern).abs().max() < 0.004


def test_learned_laplace_beats_closed_form_and_gaussian():
    x, r, _ = _periodic_residuals(n=96, seed=1)
    xh, rh, _ = _periodic_residuals(n=32, seed=2)
    learned = fit_learned_laplace(x, r, 4, steps=150, batch_size=16)
    closed = ClosedFormLaplace.fit(r, 4)
    gauss = ClosedFormGaussian.fit(r, 4)
    nll_learned = evaluate_nll(learned, xh, rh)
    nll_closed = evaluate_nll(closed, xh, rh)
    assert nll_learned < nll_closed - 0.05
    assert nll_closed < evaluate_nll(gauss, xh, rh, gaussian=True)


def test_sample_laplace_moments():
    g = torch.Generator().manual_seed(0)
    mu, b = torch.full((200_000,), 0.3), torch.full((200_000,), 0.05)
    s = sample_laplace(mu, b, g)
    assert abs(s.median().item() - 0.3) < 2e-3
    assert abs((s - 0.3).abs().mean().item() - 0.05) < 2e-3


def test_extrapolate_sums_to_one_and_goes_negative():
    w = torch.tensor([0.9, 0.05, 0.05])
    out = extrapolate(w, 0.5)
    assert math.isclose(out.sum().item(), 1.0, rel_tol=1e-6)
    assert (out < 0).any()
    torch.testing.assert_close(extrapolate(w, 0.0), w)


def _tiny_bank(k=3):
    entries, models = [], []
    for i in range(k):
        x, r, _ = _periodic_residuals(n=16, size=16, stride=4, seed=10 + i)
        entries.append(BankEntry(f"toy{i}", 4))
        models.append(fit_learned_laplace(x, r, 4, steps=5))
    return ImprintBank(entries, models)


def test_bank_roundtrip(tmp_path):
    bank = _tiny_bank()
    bank.save(tmp_path / "bank.safetensors")
    loaded = ImprintBank.load(tmp_path / "bank.safetensors")
    assert loaded.names == bank.names
    x = torch.rand(2, 3, 16, 16)
    for k in range(len(bank)):
        for a, b in zip(bank.params(k, x), loaded.params(k, x)):
            torch.testing.assert_close(a, b)
    assert loaded.subset(["toy1"]).names == ["toy1"]


def test_simulator_output_and_determinism():
    sim = ImprintSimulator(_tiny_bank(), SimulatorConfig(beta=0.5, models_per_sample=2))
    x = torch.rand(4, 3, 20, 24)
    a = sim(x, torch.Generator().manual_seed(3))
    b = sim(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.images, b.images)
    assert a.images.shape == x.shape
    assert ((a.images * 255).round() - a.images * 255).abs().max() < 1e-4  # quantised
    assert (a.weights != 0).sum(dim=1).eq(2).all()
    torch.testing.assert_close(a.weights.sum(dim=1), torch.ones(4))
    assert (a.images - x).abs().mean() > 1e-3


def test_small_autoencoders_shapes_and_save(tmp_path):
    for upsample in ("nearest", "deconv", "pixelshuffle", "bilinear"):
        for stride, kl in ((4, False), (16, True)):
            ae = SmallAutoencoder(AEConfig("t", stride=stride, upsample=upsample, kl=kl, channels=8))
            x = torch.rand(2, 3, 37, 50)
            assert ae.reconstruct(x).shape == x.shape
    ae.save(tmp_path / "t.safetensors")
    again = SmallAutoencoder.load(tmp_path / "t.safetensors")
    torch.testing.assert_close(again.reconstruct(x), ae.eval().reconstruct(x))


def test_residual_cache(tmp_path):
    ae = SmallAutoencoder(AEConfig("t", stride=4, channels=8)).eval()
    crops = (torch.rand(3, 3, 48, 48) * 255).to(torch.uint8)
    first = cached_residuals(ae, crops, tmp_path)
    assert first.shape == (3, 3, 16, 16)
    assert len(list(tmp_path.glob("*.safetensors"))) == 1
    torch.testing.assert_close(cached_residuals(ae, crops, tmp_path), first)
    torch.testing.assert_close(residuals(ae, crops), first, atol=1e-3, rtol=0)


def test_registry_lists_family():
    names = list_autoencoders()
    assert {"taef2", "tae", "taesana_encoder", "diffusers"} <= set(names)
    with pytest.raises(KeyError):
        create_autoencoder("nope")


@pytest.mark.shared
def test_taef2_roundtrip_psnr(shared_data):
    from nirnet.data.io import load_image_array

    ae = create_autoencoder("taef2", weights_dir=shared_data / "weights")
    photo = sorted((shared_data / "real-train" / "bsds500").glob("*.jpg"))[0]
    x = torch.from_numpy(load_image_array(photo).copy()).permute(2, 0, 1)[None].float() / 255
    x = x[..., :192, :256]
    with torch.inference_mode():
        recon = ae.reconstruct(x)
    psnr = 10 * torch.log10(1 / ((recon - x) ** 2).mean()).item()
    assert psnr > 20, psnr


@pytest.mark.shared
def test_taesana_encoder_loads(shared_data):
    ae = TAEAutoencoder(find_weights("taesana_encoder.pth", shared_data / "weights"), encoder_kind="taesana")
    z = ae.encode(torch.rand(1, 3, 64, 96))
    assert z.shape == (1, 32, 2, 3)
    with pytest.raises(RuntimeError):
        ae.decode(z)


def test_tae_family_other_latent_width(tmp_path):
    """The same TAE code loads a family member with another latent width (TAESD: 4 channels, no pool)."""
    from nirnet.imprint.autoencoders import tae_decoder, tae_encoder

    fake_state = {"14.weight": torch.zeros(4, 64, 3, 3)}
    enc = tae_encoder(fake_state)
    dec = tae_decoder({"1.weight": torch.zeros(64, 4, 3, 3)})
    torch.save(enc.state_dict(), tmp_path / "enc.pth")
    torch.save(dec.state_dict(), tmp_path / "dec.pth")
    ae = create_autoencoder("tae", encoder_path=str(tmp_path / "enc.pth"), decoder_path=str(tmp_path / "dec.pth"))
    assert ae.encode(torch.rand(1, 3, 32, 32)).shape == (1, 4, 4, 4)
    assert ae.reconstruct(torch.rand(1, 3, 30, 34)).shape == (1, 3, 30, 34)


def test_diffusers_autoencoder(tmp_path):
    diffusers = pytest.importorskip("diffusers", reason="diffusers extra not installed")
    config = dict(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        layers_per_block=1,
    )
    diffusers.AutoencoderKL(**config).save_pretrained(tmp_path / "vae")
    ae = create_autoencoder("diffusers", path=str(tmp_path / "vae"))
    assert ae.stride == 2
    out = ae.reconstruct(torch.rand(1, 3, 15, 17))
    assert out.shape == (1, 3, 15, 17) and out.min() >= 0 and out.max() <= 1
    x = torch.rand(1, 3, 16, 16)
    np.testing.assert_array_equal(ae.reconstruct(x).numpy(), ae.reconstruct(x).numpy())  # mode, not a sample


@pytest.mark.parametrize("shape", [(4, 3, 32, 48), (3, 3, 37, 50), (1, 3, 264, 264)])
def test_fused_params_equal_weighted_sum_of_models(shape):
    """The fast fused path equals sum_k w_k * (mu_k, b_k) evaluated model by model (any image size)."""
    bank = ImprintBank.load()  # the shipped bank: strides 4, 8 and 16
    sim = ImprintSimulator(bank, SimulatorConfig(beta=0.5, models_per_sample=2))
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    weights = sim.draw_weights(shape[0], torch.Generator().manual_seed(1))
    mu_ref, b_ref = torch.zeros_like(x), torch.zeros_like(x)
    for k in range(len(bank)):
        mu_k, b_k = bank.params(k, x)
        mu_ref += weights[:, k].view(-1, 1, 1, 1) * mu_k
        b_ref += weights[:, k].view(-1, 1, 1, 1) * b_k
    mu, b = sim.fused_params(x, weights)
    torch.testing.assert_close(mu, mu_ref, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(b, b_ref.clamp_min(sim.config.b_min), atol=1e-5, rtol=1e-4)


def test_image_cells_match_pixel_unshuffle():
    x = torch.rand(2, 3, 16, 24)
    torch.testing.assert_close(image_cells(x, 4), torch.nn.functional.pixel_unshuffle(x - 0.5, 4))


def test_fused_params_without_linear_term_match_the_per_model_path():
    sim = ImprintSimulator(ImprintBank.load(), SimulatorConfig(beta=0.5, models_per_sample=3, linear=False))
    x = torch.rand(3, 3, 40, 52, generator=torch.Generator().manual_seed(2))
    weights = sim.draw_weights(3, torch.Generator().manual_seed(3))
    for fast, slow in zip(sim.fused_params(x, weights), sim._fused_params_per_model(x, weights)):
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-4)
    with_linear = ImprintSimulator(sim.bank, SimulatorConfig(beta=0.5, models_per_sample=3))
    assert not torch.allclose(with_linear.fused_params(x, weights)[0], sim.fused_params(x, weights)[0])


def _photo_crop(size=128):
    from nirnet.data.io import load_image
    from nirnet.demo import sample_photo_paths

    paths = sample_photo_paths()
    if not paths:
        pytest.skip("no sample photo shipped with matplotlib / scikit-learn")
    img = load_image(paths[0])
    left, top = (img.width - size) // 2 // 16 * 16, (img.height - size) // 2 // 16 * 16
    arr = np.asarray(img.crop((left, top, left + size, top + size))).copy()
    return torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize(
    "name", ["ours:hf_pixelshuffle_s16_c32_gn_kl", "ours:hf_deconv_s16_c32_gn", "ours:hf_pixelshuffle_s4_c4_kl"]
)
def test_simulated_twin_moves_like_the_round_trip(name):
    """METHOD.md 1.6: with one source, gamma = 1 and b -> 0, the simulated twin must move a photo the way that
    autoencoder's own round trip does (r = x - D(E(x)), so the twin is x - n). Fails on the old ``x + n``."""
    x = _photo_crop()
    bank = ImprintBank.load()
    k = bank.names.index(name)
    weights = torch.zeros(1, len(bank))
    weights[0, k] = 1
    sim = ImprintSimulator(bank, SimulatorConfig(beta=0, gamma=(1.0, 1.0), b_min=0.0, b_scale=0.0))
    twin = sim(x, torch.Generator().manual_seed(0), weights=weights).images
    with torch.no_grad():
        recon = create_autoencoder(name).reconstruct(x)
    a, b = (twin - x).flatten(), (recon - x).flatten()
    corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1])
    # measured 0.57-0.69 for these sources; the mirrored sign gives the same magnitude, negative
    assert corr > 0.4, f"{name}: simulated twin moves against the round trip (correlation {corr:.2f})"


def test_colouring_kernel_reproduces_a_known_covariance():
    from nirnet.imprint.copula import colouring_kernel, lag_covariance

    g = torch.Generator().manual_seed(0)
    k0 = torch.zeros(3, 3, 5, 5)
    k0[:, :, 1:4, 1:4] = torch.rand(3, 3, 3, 3, generator=g)
    k0[0, 0, 2, 2] += 1.0  # a strong centre so channels are not all alike
    k0 = k0 / k0.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt()
    field = torch.nn.functional.conv2d(torch.randn(64, 3, 68, 68, generator=g), k0)
    target = lag_covariance(field, radius=4)
    kernel = colouring_kernel(target)
    again = torch.nn.functional.conv2d(torch.randn(64, 3, 72, 72, generator=g), kernel)
    got = lag_covariance(again, radius=4)
    assert (got - target).abs().max() < 0.06
    assert target[0, 1, 4, 4].abs() > 0.2 and target[0, 0, 4, 5] > 0.2  # the test covariance has structure


def _bank_with_kernels():
    from nirnet.imprint.copula import colouring_kernel

    cov = torch.zeros(3, 3, 3, 3)
    cov[:, :, 1, 1] = 0.6 + 0.4 * torch.eye(3)  # channels correlated 0.6
    for d in ((0, 1), (1, 0), (1, 2), (2, 1)):
        cov[:, :, d[0], d[1]] = 0.3 * (0.6 + 0.4 * torch.eye(3))  # neighbours correlated
    bank = _tiny_bank()
    return ImprintBank(bank.entries, list(bank.models), [colouring_kernel(cov)] * len(bank))


def test_copula_sampler_keeps_laplace_marginals_and_adds_correlation(tmp_path):
    from nirnet.imprint.copula import neighbour_correlations

    bank = _bank_with_kernels()
    bank.save(tmp_path / "bank.safetensors")
    bank = ImprintBank.load(tmp_path / "bank.safetensors")  # kernels survive the file
    assert bank.has_kernels
    x = torch.full((8, 3, 64, 64), 0.5)
    weights = torch.zeros(8, len(bank))
    weights[:, 0] = 1
    out = {}
    for sampler in ("independent", "copula"):
        sim = ImprintSimulator(bank, SimulatorConfig(sampler=sampler, beta=0, gamma=(1.0, 1.0), b_min=1e-4))
        noise = sim(x, torch.Generator().manual_seed(0), weights=weights).noise
        mu, b = sim.fused_params(x, weights)
        z = (noise - mu) / b
        assert abs(float(z.abs().mean()) - 1.0) < 0.05  # Laplace(0, 1) after standardising: E|z| = 1
        out[sampler] = neighbour_correlations(noise - mu)
    assert abs(out["independent"]["lag1_h"]) < 0.03 and abs(out["independent"]["cross_channel"]) < 0.03
    assert out["copula"]["lag1_h"] > 0.15 and out["copula"]["cross_channel"] > 0.4


def test_copula_sampler_needs_kernels():
    with pytest.raises(ValueError, match="colouring kernels"):
        ImprintSimulator(_tiny_bank(), SimulatorConfig(sampler="copula"))


def test_laplace_quantile_is_the_inverse_cdf():
    from nirnet.imprint.copula import laplace_cdf
    from nirnet.imprint.laplace import laplace_quantile_centred

    p = torch.tensor([0.01, 0.2, 0.5, 0.8, 0.99])
    mu, b = torch.full((5,), 0.3), torch.full((5,), 0.05)
    q = laplace_quantile_centred(p - 0.5, mu, b)
    torch.testing.assert_close(laplace_cdf((q - mu) / b), p)
    assert (q.diff() > 0).all()


def test_imprint_pictures_draws_both_plots_and_gives_gaps(tmp_path):
    from nirnet.imprint.plots import imprint_pictures
    from nirnet.testing import synthetic_photo

    names = ["ours:nearest_s8", "ours:deconv_s4"]
    bank = ImprintBank([BankEntry(n, s) for n, s in zip(names, (8, 4))], [LearnedLaplace(8), LearnedLaplace(4)])
    sim = ImprintSimulator(bank, SimulatorConfig(models_per_sample=None))
    crops = torch.stack([torch.from_numpy(synthetic_photo(64, 64, seed=i)).permute(2, 0, 1) for i in range(3)])
    gaps = imprint_pictures(sim, names, crops, None, tmp_path, seed=0)
    assert set(gaps) == set(names) and all(np.isfinite(g) for g in gaps.values())
    assert (tmp_path / "imprint_pca.png").stat().st_size > 1000 and (tmp_path / "residuals.png").is_file()


def test_fit_bank_fits_new_sources_and_adds_kernels_to_an_old_bank(tmp_path):
    from PIL import Image

    from nirnet.imprint.fit import FitConfig, fit_bank
    from nirnet.testing import synthetic_photo

    paths = []
    for i in range(12):
        path = tmp_path / f"photo{i}.png"
        Image.fromarray(synthetic_photo(96, 96, seed=i)).save(path)
        paths.append(path)
    config = FitConfig(crop=64, crops_per_image=1, steps=20, seed=0)
    ae = create_autoencoder("ours:nearest_s8")
    bank = fit_bank([ae], paths, config)
    assert bank.names == [ae.name] and bank.has_kernels
    entry = bank.entries[0]
    assert set(entry.heldout_nll) == {"learned_laplace", "closed_form_laplace", "closed_form_gaussian"}
    assert entry.extra["residual_mean_abs"] > 0 and "residual_correlation" in entry.extra

    old = ImprintBank(bank.entries, list(bank.models))  # a bank from before the copula sampler
    assert not old.has_kernels
    refitted = fit_bank([ae], paths, config, laplace_from=old)
    assert refitted.has_kernels and not old.has_kernels
    assert refitted.models[0] is old.models[0] and refitted.entries[0].heldout_nll == entry.heldout_nll
    with pytest.raises(KeyError, match="no autoencoder given"):
        fit_bank([], paths, config, laplace_from=old)
