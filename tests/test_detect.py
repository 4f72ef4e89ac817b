import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.detect import MIN_SIDE, Detector
from nirnet.models import create_model
from nirnet.testing import synthetic_photo, write_input_corpus


def test_predict_accepts_paths_pil_and_tensors(model_dir, tmp_path):
    detector = Detector.from_pretrained(model_dir)
    arr = synthetic_photo(80, 100, seed=3)
    Image.fromarray(arr).save(tmp_path / "a.png")
    results = detector.predict(
        [
            tmp_path / "a.png",
            Image.fromarray(arr),
            torch.from_numpy(arr).permute(2, 0, 1) / 255,
            tmp_path / "missing.png",
        ]
    )
    assert [r.ok for r in results] == [True, True, True, False]
    assert results[0].probability == pytest.approx(results[1].probability, abs=1e-6)
    assert results[0].verdict in ("generated", "real")
    assert "does not exist" in results[3].error
    explained = detector.explain(Image.fromarray(arr))
    assert explained["noise_map"].shape == (64, 64, 3) and explained["spectrum"].shape == (64, 64)
    assert explained["probability"] == pytest.approx(results[1].probability, abs=1e-6)
    np.testing.assert_array_equal(detector.noise_maps(Image.fromarray(arr))["noise_map"], explained["noise_map"])


def test_residual_to_uint8_centres_and_clips():
    from nirnet.render import residual_to_uint8

    r = np.concatenate([np.linspace(-1, 1, 99), [100.0]])  # one value far beyond 3 standard deviations
    out = residual_to_uint8(r)
    assert out.dtype == np.uint8 and out[-1] == 255
    assert np.all(np.diff(out[:99].astype(int)) >= 0) and out[0] < out[98] < 255  # order kept below the clip
    assert residual_to_uint8(np.zeros(4)).tolist() == [127] * 4  # flat input: mid-grey, no division by zero


def test_predict_paths_matches_predict(model_dir, tmp_path):
    detector = Detector.from_pretrained(model_dir)
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(synthetic_photo(70 + i * 20, 90, seed=i)).save(paths[-1])
    direct = [r.probability for r in detector.predict(paths)]
    streamed = [r.probability for r in detector.predict_paths(paths, workers=0)]
    np.testing.assert_allclose(direct, streamed, atol=1e-6)


def test_detect_cli_bad_inputs_among_good(model_dir, tmp_path):
    """The bad-input corpus mixed into good images: every good one scored, every bad one named, exit 1."""
    cases = write_input_corpus(tmp_path / "imgs" / "corpus")
    for i in range(20):
        Image.fromarray(synthetic_photo(60, 80, seed=100 + i)).save(tmp_path / "imgs" / f"good_{i}.jpg")
    result = CliRunner().invoke(
        app,
        [
            "detect",
            str(tmp_path / "imgs"),
            "--model",
            str(model_dir),
            "--json",
            "--workers",
            "0",
            "--csv",
            str(tmp_path / "out.csv"),
        ],
    )
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    by_path = {r["path"]: r for r in payload["results"]}
    for case in cases:
        if not case.path.is_file():
            continue  # a directory named like an image is not an input file
        entry = by_path[str(case.path)]
        if case.loads and min(case.expected_size) >= MIN_SIDE:
            assert entry["probability"] is not None, case.name
        else:
            assert entry["error"], case.name
    assert sum(1 for r in payload["results"] if r["path"].endswith(".jpg") and "good_" in r["path"]) == 20
    too_small = sum(1 for c in cases if c.loads and min(c.expected_size) < MIN_SIDE)
    assert payload["failed"] == sum(1 for c in cases if not c.loads and c.path.is_file()) + too_small
    assert (tmp_path / "out.csv").read_text().count("\n") == len(payload["results"]) + 1


def test_detect_cli_all_good_exits_zero(model_dir, tmp_path):
    Image.fromarray(synthetic_photo(60, 80, seed=1)).save(tmp_path / "x.png")
    result = CliRunner().invoke(app, ["detect", str(tmp_path / "x.png"), "--model", str(model_dir), "--workers", "0"])
    assert result.exit_code == 0, result.output


def test_detect_cli_nothing_found(tmp_path):
    result = CliRunner().invoke(app, ["detect", str(tmp_path)])
    assert result.exit_code == 2


@pytest.mark.parametrize("name", ["test_nirnet", "npr_tiny"])
def test_model_folder_loads_in_a_fresh_interpreter(tmp_path, name):
    """`nirnet detect/eval --model FOLDER` in a new process, where nothing has imported the registry yet."""
    import subprocess
    import sys

    folder = tmp_path / name
    overrides = {"semantic": "none"} if name == "test_nirnet" else {}
    create_model(name, **overrides).save_pretrained(folder)
    code = f"from nirnet.detect import Detector; print(Detector.from_pretrained({str(folder)!r}).name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == name
