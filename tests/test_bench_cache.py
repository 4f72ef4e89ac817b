"""benchmarks/unseen_generators.py keeps each model's scores keyed by the benchmark's contents: a copy of the same
images elsewhere reuses them, a changed image does not."""

import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
unseen_generators = pytest.importorskip("unseen_generators")


def test_score_cache_follows_the_images_not_the_folder(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "config.json").write_text("{}")
    data = tmp_path / "bench"
    (data / "real").mkdir(parents=True)
    (data / "manifest.csv").write_text("path,label,generator,source,license\nreal/a.png,0,real,x,y\n")
    (data / "real" / "a.png").write_bytes(b"pixels")
    copy = tmp_path / "elsewhere" / "bench"
    shutil.copytree(data, copy)

    def key(folder, variant=""):
        unseen_generators.data_fingerprint.cache_clear()
        return unseen_generators._cache_file(str(tmp_path / "cache"), str(model), str(folder) + variant)

    assert key(data) == key(copy)
    assert key(data) != key(data, "@input_scale=1.5")
    (copy / "real" / "a.png").write_bytes(b"pixelz")
    assert key(data) != key(copy)
    first = key(data)
    (model / "config.json").write_text('{"threshold": 0.5}')  # a new threshold, a new entry
    assert key(data) != first
