"""benchmarks/leave_family_out.py end to end on a tiny model: every fold trains without its families, is scored on
them against held-out real photos, and the fitted threshold is stored."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from nirnet.testing import synthetic_photo, write_labelled_dataset

ROOT = Path(__file__).resolve().parents[1]
GENERATORS = ["sd15", "anime", "flux", "mindalle", "gigagan"]  # one family of each fold


@pytest.mark.slow  # ~80 s on 2 cores (six tiny trainings); the probe fit's own folds are tested in test_probe.py
def test_leave_family_out_runs_every_fold(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(30):
        Image.fromarray(synthetic_photo(72, 72, seed=i)).save(photos / f"photo{i}.png")
    images = [
        (gen, 1, Image.fromarray(synthetic_photo(72, 72, seed=100 + 10 * g + i)))
        for g, gen in enumerate(GENERATORS)
        for i in range(3)
    ]
    corpus = write_labelled_dataset(tmp_path / "corpus", images)
    config = tmp_path / "recipe.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model": "test_nirnet",
                "data": {
                    "real": [str(photos)],
                    "generated": [str(corpus)],
                    "balance": True,
                    "pairs": {"p_generated": 1.0, "p_simulator": 0.0},
                },
                "optim": {"steps": 2, "batch_pairs": 2, "warmup": 1},
                "run": {"workers": 0, "checkpoint_every": 1},
            }
        )
    )
    model = tmp_path / "model"
    subprocess.run(
        [sys.executable, "-m", "nirnet.cli.main", "train", "-c", str(config), f"run.out_dir={model}", "--no-progress"],
        check=True,
        capture_output=True,
    )
    out = tmp_path / "report"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "leave_family_out.py"),
            "-c",
            str(config),
            "--runs",
            str(tmp_path / "runs"),
            "--out",
            str(out),
            "--backend",
            "torch",
            "--store-threshold",
            str(model / "final"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "lfo.json").read_text())
    seed = report["seeds"]["0"]
    assert len(seed["fold_auc"]) == 5
    assert set(seed["families"]) == {"sd1", "sdxl", "flux", "vqgan_ar", "gigagan"}
    for fold in range(5):  # each fold's run trained without its own families
        cfg = yaml.safe_load((tmp_path / "runs" / "s0" / f"fold{fold}" / "config.yaml").read_text())
        assert cfg["data"]["exclude_families"] and cfg["data"]["validation"] == 0.2
    stored = json.loads((model / "final" / "config.json").read_text())["threshold"]
    assert stored == report["threshold"] and 0 <= stored <= 1

    # A fixed model (--model) scores each fold's held-out images once: another seed reuses them, so a second seed
    # runs even when the model can no longer be loaded.
    def fixed(seed: int) -> subprocess.CompletedProcess:
        args = ["-c", str(config), "--runs", str(tmp_path / "fixed"), "--model", str(model / "final"), "--seeds"]
        return subprocess.run(
            [sys.executable, str(ROOT / "benchmarks" / "leave_family_out.py"), *args, str(seed), "--backend", "torch"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )

    assert fixed(0).returncode == 0
    (model / "final" / "model.safetensors").unlink()
    again = fixed(1)
    assert again.returncode == 0, again.stderr[-2000:]
    for fold in range(5):
        first, second = (
            json.loads((tmp_path / "fixed" / s / f"fold{fold}" / "lfo_scores.json").read_text()) for s in ("s0", "s1")
        )
        assert first == second
