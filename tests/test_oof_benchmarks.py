"""The benchmarks that read a probe fit's out-of-fold scores, on made-up scores: threshold_rules.py (each rule's
threshold, out-of-fold and nested accuracies) and paired_recipes.py (two recipes on the images both scored)."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _fit_folder(path: Path, seed: int, gap: float = 0.4, extra_source: bool = False) -> Path:
    """A fit folder whose scores put photos around 0.3 and generated images around 0.7, fold 2's lower."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    with open(path / "leave_family_out_scores.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["protocol", "fold", "held_source", "path", "label", "group", "score"])
        for fold in range(3):
            for i in range(40):
                writer.writerow(["families_and_sources", fold, "a", f"r{i}", 0, "a", rng.normal(0.3, 0.1)])
                score = rng.normal(0.3 + (gap - 0.15 if fold == 2 else gap), 0.1)
                writer.writerow(["families_and_sources", fold, "a", f"g{fold}_{i}", 1, f"f{fold}", score])
                if extra_source:  # a second real source held out, which the other recipe does not have
                    writer.writerow(["families_and_sources", fold, "b", f"b{i}", 0, "b", rng.normal(0.9, 0.1)])
    return path


def test_rules_report_thresholds_and_nested_accuracy(tmp_path):
    fits = [_fit_folder(tmp_path / f"fit{k}", k) for k in range(2)]
    out = tmp_path / "out"
    args = [arg for fit in fits for arg in ("--fit", str(fit))]
    script = str(ROOT / "benchmarks" / "threshold_rules.py")
    result = subprocess.run(
        [sys.executable, script, *args, "--real-quantile", "0.9", "--out", str(out)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| equal_error |" in result.stdout and "| real_0.9 |" in result.stdout
    report = json.loads((out / "threshold_rules.json").read_text())["rules"]
    assert set(report) == {"max_balanced", "max_balanced_bagged", "equal_error", "real_0.9"}
    for row in report.values():
        assert len(row["threshold"]) == 2 and len(row["nested"]) == 2
        for real, generated, balanced in row["oof"] + row["nested"]:
            assert abs(balanced - (real + generated) / 2) < 1e-9 and 0.5 < balanced <= 1
    for real, generated, _ in report["equal_error"]["oof"]:
        assert abs(real - generated) < 0.03  # one misclassified image of 120 either side
    for real, _, _ in report["real_0.9"]["oof"]:
        assert abs(real - 0.9) < 0.01
    # the best balanced accuracy on all folds is an upper bound of the nested one
    best, nested = (np.mean([b for *_, b in report["max_balanced"][k]]) for k in ("oof", "nested"))
    assert best >= nested


def test_paired_recipes_compare_the_images_both_scored(tmp_path):
    base = _fit_folder(tmp_path / "base", 0, gap=0.2)
    other = _fit_folder(tmp_path / "other", 1, gap=0.4, extra_source=True)
    script = str(ROOT / "benchmarks" / "paired_recipes.py")
    result = subprocess.run(
        [sys.executable, script, "--base", str(base), "--other", str(other), "--per-family"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "on 240 shared test rows of 160 images (120 rows only in the other, 0 only in the base)" in result.stdout
    difference = float(result.stdout.split("in the base): ")[1].split()[0])
    assert difference > 0.05  # the wider gap ranks better; the extra source's photos (scored 0.9) are left out
    # each family against every shared photo: the wider gap wins in each, and the interval says so
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.startswith("  f")}
    assert set(lines) == {"f0", "f1", "f2"}
    for line in lines.values():
        assert float(line.split(": ")[1].split()[0]) > 0 and line.rstrip().endswith("*")


def test_lfo_report_counts_images_not_scorings(tmp_path):
    fit = _fit_folder(tmp_path / "fit", 0)
    (fit / "final").mkdir()
    shipped = ROOT / "src" / "nirnet" / "weights" / "nirnet_stack" / "config.json"
    (fit / "final" / "config.json").write_text(shipped.read_text())
    script = str(ROOT / "benchmarks" / "lfo_report.py")
    result = subprocess.run(
        [sys.executable, script, "--fit", str(fit), "--out", str(tmp_path / "out")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| a | 40 |" in result.stdout  # 40 photos, each scored by the three folds
    assert "| f2 | 40 |" in result.stdout and "120 real and 120 generated scorings" in result.stdout
    report = json.loads((tmp_path / "out" / "lfo_report_families_and_sources.json").read_text())
    assert report["stored_threshold"] == json.loads(shipped.read_text())["threshold"]
    low, auc, high = report["pooled_auc"][1], report["pooled_auc"][0], report["pooled_auc"][2]
    assert auc > 0.9 and low < auc < high
    missing = subprocess.run(
        [sys.executable, script, "--fit", str(fit), "--protocol", "families"], capture_output=True, text=True
    )
    assert missing.returncode != 0 and "no out-of-fold scores of protocol" in missing.stderr


def test_real_false_positives_counts_photos_called_generated(model_dir, tmp_path):
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(photos / f"p{i}.png")
    (photos / "broken.jpg").write_bytes(b"not an image")
    script = str(ROOT / "benchmarks" / "real_false_positives.py")
    rows = tmp_path / "rows.csv"
    args = ["--model", f"a={model_dir}", "--model", f"b={model_dir}", "--set", f"mine={photos}", "--csv", str(rows)]
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "skipped" in result.stdout and "broken.jpg" in result.stdout  # reported, the others scored
    scored = list(csv.DictReader(rows.read_text().splitlines()))
    assert len(scored) == 10
    called = sum(float(r["probability"]) >= float(r["threshold"]) for r in scored if r["model"] == "a")
    assert f"| mine | a | {called} of 5 |" in result.stdout
    # the same model twice: no difference, and its interval is a point
    assert "| +0.000 (+0.000 to +0.000) |" in result.stdout


def test_wilson_interval():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from real_false_positives import wilson

    low, high = wilson(0, 10)
    assert low == 0 and 0.25 < high < 0.35  # the rule of three's neighbourhood, not a zero-width interval
    low, high = wilson(5, 10)
    assert low < 0.5 < high and abs((0.5 - low) - (high - 0.5)) < 1e-9


def test_photo_crossfit_scores_every_photo_by_fits_without_it():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from photo_crossfit import crossfit, photo_splits

    rng = np.random.default_rng(0)
    families = np.array(["real"] * 60 + [f for f in ("sd1", "sdxl", "flux", "vqgan_ar", "gigagan") for _ in range(8)])
    labels = (families != "real").astype(int)
    sources = np.array(["a"] * 45 + ["b"] * 15 + ["-"] * 40)
    held = np.r_[np.arange(60) % 5 == 0, np.arange(40) % 4 == 0]
    part = photo_splits(labels, sources, 3, 0)
    assert (part[labels == 1] == -1).all()
    for source, n in (("a", 45), ("b", 15)):  # every source spread evenly over the parts
        assert sorted(np.bincount(part[sources == source])) == [n // 3] * 3
    x = rng.normal(size=(100, 4)) + labels[:, None]
    oof = crossfit(x, labels, families, sources, held, np.ones(100), 0.1, 3, 0)
    real_rows = oof.rows[oof.labels == 0]
    assert sorted(set(real_rows)) == list(range(60))  # every photo scored, not only the 20 % held out
    assert len(real_rows) == 60 * len(oof.folds)  # once per fold, by the fits of its own part
    assert (oof.labels == 1).sum() == 3 * 40  # each generated image once per part
