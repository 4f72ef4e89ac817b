import csv
from pathlib import Path

import pytest
from PIL import Image

from nirnet.data.datasets import DatasetLayoutError, count_by_subset, detect_layout, read_dataset


def _img(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)


def test_forensynths_nested(tmp_path):
    for sub in ("progan/airplane", "progan/cat", "stylegan/bedroom"):
        _img(tmp_path / sub / "0_real" / "a.png")
        _img(tmp_path / sub / "1_fake" / "b.png")
        _img(tmp_path / sub / "1_fake" / "c.jpg")
    samples = read_dataset(tmp_path)
    assert detect_layout(tmp_path) == "forensynths"
    assert count_by_subset(samples) == {"progan": {"real": 2, "fake": 4}, "stylegan": {"real": 1, "fake": 2}}


def test_forensynths_direct(tmp_path):
    _img(tmp_path / "0_real" / "a.png")
    _img(tmp_path / "1_fake" / "b.png")
    samples = read_dataset(tmp_path)
    assert {s.subset for s in samples} == {tmp_path.name}


def test_genimage_split(tmp_path):
    for gen in ("sdv4", "midjourney"):
        for split in ("train", "val"):
            _img(tmp_path / gen / split / "nature" / "n.JPEG")
            _img(tmp_path / gen / split / "ai" / "a.png")
    assert detect_layout(tmp_path) == "genimage"
    assert len(read_dataset(tmp_path)) == 8
    val = read_dataset(tmp_path, split="val")
    assert count_by_subset(val) == {"midjourney": {"real": 1, "fake": 1}, "sdv4": {"real": 1, "fake": 1}}


def test_flat(tmp_path):
    _img(tmp_path / "real" / "x" / "a.png")
    _img(tmp_path / "fake" / "b.webp")
    (tmp_path / "fake" / "readme.txt").write_text("not an image")
    samples = read_dataset(tmp_path)
    assert detect_layout(tmp_path) == "flat"
    assert [s.label for s in samples] == [0, 1]


def test_csv_manifest(tmp_path):
    _img(tmp_path / "imgs" / "a.png")
    _img(tmp_path / "imgs" / "b.png")
    manifest = tmp_path / "list.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "generator"])
        writer.writerow(["imgs/a.png", "0", ""])
        writer.writerow(["imgs/b.png", "fake", "sdxl"])
    samples = read_dataset(manifest)
    assert [(s.label, s.subset) for s in samples] == [(0, "real"), (1, "sdxl")]
    assert all(s.path.is_file() for s in samples)


def test_csv_bad_label(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.png,maybe\n")
    with pytest.raises(DatasetLayoutError, match="label"):
        read_dataset(manifest)


def test_unknown_layout_is_clear(tmp_path):
    _img(tmp_path / "whatever" / "a.png")
    with pytest.raises(DatasetLayoutError, match="cannot tell the dataset layout"):
        read_dataset(tmp_path)


@pytest.mark.shared
def test_bench_dev_counts_match_manifest(shared_data):
    root = shared_data / "bench-dev"
    samples = read_dataset(root)
    with (root / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    expected = {}
    for row in rows:
        entry = expected.setdefault(row["generator"], {"real": 0, "fake": 0})
        entry["fake" if row["label"] == "1" else "real"] += 1
    assert count_by_subset(samples) == expected
    assert len(samples) == len(rows) == 183
    assert all(s.path.is_file() for s in samples)
