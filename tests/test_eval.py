import json
import math

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, average_precision_score, roc_auc_score

from nirnet.data.datasets import Sample
from nirnet.eval.evaluate import evaluate_robustness, score_samples
from nirnet.eval.metrics import best_threshold, binary_metrics, per_subset_metrics
from nirnet.eval.protocol import PROTOCOLS, robustness_grid
from nirnet.testing import synthetic_photo


def test_binary_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(rng.normal(0.4 + 0.2 * y, 0.2), 0, 1)
    m = binary_metrics(y, s, 0.5)
    assert math.isclose(m["auc"], roc_auc_score(y, s))
    assert math.isclose(m["ap"], average_precision_score(y, s))
    assert math.isclose(m["acc"], accuracy_score(y, s >= 0.5))
    assert math.isclose(m["real_acc"], accuracy_score(y[y == 0], s[y == 0] >= 0.5))
    assert math.isclose(m["fake_acc"], accuracy_score(y[y == 1], s[y == 1] >= 0.5))


def test_per_subset_pairs_generators_with_shared_reals():
    labels = [0, 0, 1, 1, 1, 1]
    scores = [0.1, 0.2, 0.9, 0.15, 0.8, 0.7]
    subsets = ["real", "real", "a", "a", "b", "b"]
    out = per_subset_metrics(labels, scores, subsets)
    assert set(out) == {"a", "b", "mean", "all"}
    assert out["a"]["n_real"] == 2 and out["a"]["n_fake"] == 2
    assert math.isclose(out["a"]["auc"], roc_auc_score([0, 0, 1, 1], [0.1, 0.2, 0.9, 0.15]))
    assert math.isclose(out["mean"]["auc"], (out["a"]["auc"] + out["b"]["auc"]) / 2)


def test_single_class_gives_nan():
    m = binary_metrics([1, 1], [0.2, 0.9])
    assert math.isnan(m["auc"]) and m["fake_acc"] == 0.5


def test_best_threshold():
    assert 0.3 < best_threshold([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.9]) <= 0.6


def test_protocol_treats_both_classes_alike():
    png = Image.fromarray(synthetic_photo(700, 600, seed=0))
    out = PROTOCOLS["aligned"](png)
    assert out.size == (512, 512)
    assert PROTOCOLS["raw"](png) is png


def test_robustness_grid_output(tmp_path):
    samples = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(synthetic_photo(64, 64, seed=i)).save(path)
        samples.append(Sample(path, i % 2, "real" if i % 2 == 0 else "gen"))
    (tmp_path / "bad.png").write_bytes(b"nope")
    scorer = lambda images: [float(np.asarray(im).std() / 100) for im in images]  # noqa: E731
    scored = score_samples(scorer, samples + [Sample(tmp_path / "bad.png", 1, "gen")], PROTOCOLS["aligned"])
    assert len(scored.failures) == 1 and np.isnan(scored.scores[-1])
    rows = evaluate_robustness(scorer, samples)
    assert len(rows) == 1 + len(robustness_grid()) == 13
    assert {r["family"] for r in rows} == {"none", "jpeg", "blur", "resize"}
    assert all({"auc", "acc", "real_acc", "fake_acc", "ap"} <= set(r) for r in rows)


@pytest.mark.shared
def test_eval_cli_on_bench_dev(shared_data, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from nirnet.cli.main import app
    from nirnet.detect import Detector
    from nirnet.models import create_model

    scored = []
    predict_images = Detector.predict_images
    monkeypatch.setattr(
        Detector, "predict_images", lambda self, images: scored.extend(images) or predict_images(self, images)
    )

    create_model("test_nirnet", semantic="none").save_pretrained(tmp_path / "m")
    # a small copy of the manifest keeps this test quick
    rows = (shared_data / "bench-dev" / "manifest.csv").read_text().splitlines()
    keep = [rows[0]] + [r for r in rows[1:] if "sdxl-turbo" in r or "kodak" in r][:12]
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        "\n".join(
            r.replace("fake/", str(shared_data / "bench-dev" / "fake") + "/", 1).replace(
                "real/", str(shared_data / "bench-dev" / "real") + "/", 1
            )
            for r in keep
        )
        + "\n"
    )
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--data",
            str(manifest),
            "--model",
            str(tmp_path / "m"),
            "--out",
            str(tmp_path / "out"),
            "--robustness",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "roc.png").is_file() and (tmp_path / "out" / "robustness.png").is_file()
    assert "sdxl-turbo" in (tmp_path / "out" / "report.md").read_text()
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    clean = report["robustness"][0]  # the evaluation itself, not a second scoring of the same images
    assert len(scored) == len(robustness_grid()) * 12 + 12
    assert report["backend"] == "torch"
    assert clean["label"] == "clean" and {k: clean[k] for k in report["metrics"]["mean"]} == report["metrics"]["mean"]


def test_eval_calibrate_stores_threshold(tmp_path):
    import json

    from typer.testing import CliRunner

    from nirnet.cli.main import app
    from nirnet.models import create_model

    create_model("test_nirnet", semantic="none").save_pretrained(tmp_path / "m")
    for label in ("real", "fake"):
        (tmp_path / "val" / label).mkdir(parents=True)
        for i in range(3):
            arr = synthetic_photo(72, 72, seed=i + (10 if label == "fake" else 0))
            Image.fromarray(arr).save(tmp_path / "val" / label / f"{i}.png")
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--data",
            str(tmp_path / "val"),
            "--model",
            str(tmp_path / "m"),
            "--calibrate",
            str(tmp_path / "val"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "m" / "config.json").read_text())["threshold"]
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["threshold"] == stored
    # the stored threshold is the best balanced accuracy on the validation scores
    from nirnet.detect import Detector

    detector = Detector.from_pretrained(tmp_path / "m")
    assert detector.threshold == stored
    probs, labels = [], []
    for label in ("real", "fake"):
        for path in sorted((tmp_path / "val" / label).glob("*.png")):
            image = PROTOCOLS["aligned"](Image.open(path).convert("RGB"))  # calibration scores under the protocol
            probs.append(detector.predict(image)[0].probability)
            labels.append(int(label == "fake"))
    probs, labels = np.array(probs), np.array(labels)

    def balanced(t):
        return 0.5 * ((probs[labels == 0] < t).mean() + (probs[labels == 1] >= t).mean())

    assert balanced(stored) >= max(balanced(t) for t in np.r_[probs, 0.5]) - 1e-9


def test_robustness_decodes_each_image_once_and_resumes(tmp_path, monkeypatch):
    import nirnet.eval.evaluate as evaluate

    samples = []
    for i in range(4):
        path = tmp_path / f"{i}.png"
        Image.fromarray(synthetic_photo(64, 64, seed=i)).save(path)
        samples.append(Sample(path, i % 2, "real" if i % 2 == 0 else "gen"))
    loads = []
    real_load = evaluate.load_image
    monkeypatch.setattr(evaluate, "load_image", lambda p: loads.append(p) or real_load(p))
    scorer = lambda images: [float(np.asarray(im).std() / 100) for im in images]  # noqa: E731
    seen: list[dict] = []
    full = evaluate_robustness(scorer, samples, on_row=seen.append)
    assert len(loads) == len(samples) and len(seen) == 13  # one decode per image for all 13 cells
    loads.clear()
    calls = []
    resumed = evaluate_robustness(
        lambda ims: calls.append(len(ims)) or scorer(ims), samples, done={r["label"]: r for r in seen[:10]}
    )
    assert resumed == full and len(calls) == 3  # only the 3 unfinished cells were scored


def test_eval_report_names_the_checkpoint(tmp_path):
    import hashlib
    import json

    from typer.testing import CliRunner

    from nirnet.cli.main import app
    from nirnet.models import create_model

    create_model("test_nirnet", semantic="none").save_pretrained(tmp_path / "m")
    for label in ("real", "fake"):
        (tmp_path / "d" / label).mkdir(parents=True)
        for i in range(2):
            Image.fromarray(synthetic_photo(72, 72, seed=i + 10 * (label == "fake"))).save(
                tmp_path / "d" / label / f"{i}.png"
            )
    args = ["eval", "--data", str(tmp_path / "d"), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "out")]
    assert CliRunner().invoke(app, args).exit_code == 0
    report = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert report["source"] == str((tmp_path / "m").resolve())
    assert report["weights_sha256"] == hashlib.sha256((tmp_path / "m" / "model.safetensors").read_bytes()).hexdigest()


def test_best_threshold_reaches_the_best_balanced_accuracy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.random(300) + 0.4 * y

    def balanced(t):
        pred = s >= t
        return 0.5 * ((~pred[y == 0]).mean() + pred[y == 1].mean())

    best = max(balanced(t) for t in np.unique(s))  # brute force over every candidate
    assert balanced(best_threshold(y, s)) == pytest.approx(best)


def test_robustness_log_resumes_only_the_same_evaluation(tmp_path):
    from nirnet.eval.evaluate import RobustnessLog

    log = RobustnessLog(tmp_path / "p.json", {"model": "m", "threshold": 0.5})
    log.add({"label": "clean", "auc": 0.7})
    assert RobustnessLog(tmp_path / "p.json", {"model": "m", "threshold": 0.5}).done == {
        "clean": {"label": "clean", "auc": 0.7}
    }
    assert RobustnessLog(tmp_path / "p.json", {"model": "other", "threshold": 0.5}).done == {}
    log.close()
    assert not (tmp_path / "p.json").exists()
