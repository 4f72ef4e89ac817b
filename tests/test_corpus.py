"""The corpus builder: pinned rows fetched from a local bare git snapshot (and a Debian package), hashes checked,
formats sniffed, tiles cut losslessly, manifest and licence summary written, reruns a no-op."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.data.blobs import BlobMissing, BlobSource
from nirnet.data.corpus import COLUMNS, SourceListError, build_corpus, read_sources
from nirnet.data.datasets import read_dataset
from nirnet.testing import synthetic_photo

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _encode(arr: np.ndarray, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _git(*args: str, cwd) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    import os

    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env={**os.environ, **env}
    ).stdout.strip()


@pytest.fixture
def mirror(tmp_path):
    """A mirror root holding one bare snapshot ``acme/gallery`` with a JPEG, a PNG named .jpg and a PNG grid."""
    work = tmp_path / "work"
    work.mkdir()
    photo = synthetic_photo(64, 96, seed=1)
    grid = synthetic_photo(64, 128, seed=2)
    files = {
        "img/photo.jpg": _encode(photo, "JPEG", quality=90),
        "img/fake_ext.jpg": _encode(photo, "PNG"),  # PNG bytes behind a .jpg name
        "img/grid.png": _encode(grid, "PNG"),
    }
    for name, data in files.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(data)
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "images", cwd=work)
    commit = _git("rev-parse", "HEAD", cwd=work)
    root = tmp_path / "mirror"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(root / "acme+gallery" / "repo")], check=True)
    tile = hashlib.sha256(np.ascontiguousarray(grid[0:64, 64:128]).tobytes()).hexdigest()
    return {"root": root, "commit": commit, "files": files, "grid": grid, "tile_sha": tile}


def _write_list(path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in COLUMNS})


def _row(mirror, path, generator="gan", label=1, kind="file", box="", sha=None) -> dict:
    sha = sha or hashlib.sha256(mirror["files"][path]).hexdigest()
    return dict(
        repo="acme/gallery", commit=mirror["commit"], path=path, box=box, generator=generator, label=label,
        license="MIT", sha256=sha, kind=kind, note="test",
    )  # fmt: skip


def test_builds_file_and_tile_rows_and_reruns_as_a_no_op(mirror, tmp_path):
    sources = tmp_path / "sources.csv"
    _write_list(
        sources,
        [
            _row(mirror, "img/photo.jpg", generator="real", label=0),
            _row(mirror, "img/fake_ext.jpg"),
            _row(mirror, "img/grid.png", kind="tile_rgb", box="64 0 128 64", sha=mirror["tile_sha"]),
        ],
    )
    out = tmp_path / "corpus"
    report = build_corpus(read_sources(sources), out, BlobSource(mirror["root"]))
    assert report.ok and report.built == 3 and report.present == 0

    samples = {s.path.name: s for s in read_dataset(out)}
    assert {s.label for s in samples.values()} == {0, 1}
    photo = next(p for p in samples if p.endswith("photo.jpg"))
    assert (out / "real" / "real" / photo).read_bytes() == mirror["files"]["img/photo.jpg"]  # bytes kept as they are
    sniffed = [p for p in samples if "fake_ext" in p]
    assert sniffed and sniffed[0].endswith(".png")  # the real format, not the name's
    tile = next(s.path for s in samples.values() if "grid" in s.path.name)
    np.testing.assert_array_equal(np.asarray(Image.open(tile)), mirror["grid"][0:64, 64:128])  # lossless tile

    manifest = list(csv.DictReader((out / "manifest.csv").open()))
    assert set(manifest[0]) >= {"path", "label", "generator", "source", "license", "family"}
    assert all(mirror["commit"] in r["source"] for r in manifest)
    assert "MIT" in (out / "LICENSES.md").read_text()

    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.suffix != ".json"}
    again = build_corpus(read_sources(sources), out, BlobSource(mirror["root"]))
    assert again.ok and again.built == 0 and again.present == 3
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items() if p.parent.name != "corpus")


def test_hash_mismatch_and_missing_blob_are_reported_and_left_out(mirror, tmp_path):
    sources = tmp_path / "sources.csv"
    _write_list(
        sources,
        [
            _row(mirror, "img/photo.jpg", sha="0" * 64),
            _row(mirror, "img/grid.png", kind="tile_rgb", box="0 0 64 64", sha=mirror["tile_sha"]),  # wrong tile
            {**_row(mirror, "img/photo.jpg"), "path": "img/gone.jpg"},
            {**_row(mirror, "img/photo.jpg"), "repo": "acme/absent"},
            _row(mirror, "img/fake_ext.jpg"),
        ],
    )
    warnings: list[str] = []
    out = tmp_path / "corpus"
    report = build_corpus(read_sources(sources), out, BlobSource(mirror["root"]), warn=warnings.append)
    assert not report.ok and report.built == 1 and len(report.missing) == 4
    assert len(warnings) == 4 and all("\n" not in w for w in warnings)
    assert any("sha256" in w and "line 2" in w for w in warnings)
    assert any("not in the snapshot" in w for w in warnings)
    assert any("no snapshot of acme/absent" in w for w in warnings)
    assert len(read_dataset(out)) == 1  # nothing unverified is kept
    assert json.loads((out / "build-report.json").read_text())["ok"] is False


def test_cli_exit_status_says_whether_rows_were_missing(mirror, tmp_path):
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    _write_list(good, [_row(mirror, "img/photo.jpg")])
    _write_list(bad, [_row(mirror, "img/photo.jpg"), {**_row(mirror, "img/photo.jpg"), "path": "nope.png"}])
    runner = CliRunner()
    args = ["--out", str(tmp_path / "c"), "--mirror-root", str(mirror["root"])]
    result = runner.invoke(app, ["data", "build-corpus", str(good), *args])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["data", "build-corpus", str(bad), *args])
    assert result.exit_code == 1 and "left out line 3" in result.output and "Traceback" not in result.output
    result = runner.invoke(app, ["data", "build-corpus", str(tmp_path / "none.csv"), *args])
    assert result.exit_code == 2 and "error" in result.output


def test_malformed_lists_name_the_line(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("repo,commit,path\n", encoding="utf-8")
    with pytest.raises(SourceListError, match="missing columns"):
        read_sources(path)
    base = dict(repo="a/b", commit="c" * 40, path="x.png", generator="g", label="1", sha256="a" * 64, kind="tile_rgb")
    _write_list(path, [base])
    with pytest.raises(SourceListError, match=r"s\.csv:2: a tile_rgb row needs a box"):
        read_sources(path)
    _write_list(path, [{**base, "box": "5 5 1 1"}])
    with pytest.raises(SourceListError, match="empty"):
        read_sources(path)


def _deb(files: dict[str, bytes]) -> bytes:
    """A minimal Debian package: an ar archive with debian-binary, control and data tarballs."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as archive:
        for name, body in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", b""), ("data.tar.xz", data.getvalue())]
    out = b"!<arch>\n"
    for name, body in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" if len(body) % 2 else b""
    return out


def test_debian_rows_read_from_a_local_package(tmp_path):
    photo = _encode(synthetic_photo(48, 48, seed=3), "JPEG", quality=92)
    (tmp_path / "mirror" / "debian").mkdir(parents=True)
    deb = tmp_path / "mirror" / "debian" / "nice-wallpapers_1%3a2.0-1_all.deb"
    deb.write_bytes(_deb({"usr/share/backgrounds/lake.jpg": photo}))
    blobs = BlobSource(tmp_path / "mirror")
    assert blobs.get("debian:nice-wallpapers", "1:2.0-1", "usr/share/backgrounds/lake.jpg") == photo
    with pytest.raises(BlobMissing, match="has no file"):
        blobs.get("debian:nice-wallpapers", "1:2.0-1", "usr/share/backgrounds/none.jpg")
    with pytest.raises(BlobMissing, match="unsupported source"):
        blobs.get("gitlab.com/a/b", "x", "y")


SHIPPED_LISTS = sorted((Path(__file__).resolve().parents[1] / "sources").glob("*.csv"))


@pytest.mark.parametrize("listing", SHIPPED_LISTS, ids=lambda p: p.name)
def test_shipped_lists_are_licensed_images_of_one_class_listed_once(listing):
    rows = read_sources(listing)  # parses: columns, labels, hashes, kinds
    real = [r.label == 0 and r.generator == "real" for r in rows]
    assert all(real) or not any(r.label == 0 or r.generator == "real" for r in rows), "photos and generated apart"
    assert all(r.license.strip() for r in rows), "every image names its licence"
    assert len({r.sha256 for r in rows}) == len(rows), "no image twice"
    assert len({r.output_stem() for r in rows}) == len(rows)


def test_no_photo_is_in_two_shipped_lists():
    hashes = [r.sha256 for listing in SHIPPED_LISTS for r in read_sources(listing)]
    assert len(SHIPPED_LISTS) >= 2 and len(set(hashes)) == len(hashes)


SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
BENCH_DEV = SHARED / "bench-dev" / "manifest.csv"


def test_rows_drawn_from_evaluation_data_are_refused(mirror, tmp_path):
    """A row whose file is an evaluation image, from a Debian package the evaluation set draws from, from a
    held-out repository or of a held-out family is refused, named in one line, and never built."""
    evaluation = tmp_path / "eval"
    (evaluation / "real").mkdir(parents=True)
    (evaluation / "real" / "photo.jpg").write_bytes(mirror["files"]["img/photo.jpg"])
    (evaluation / "manifest.csv").write_text(
        "path,label,generator,source,license\n"
        "real/photo.jpg,0,real,acme gallery,MIT\n"
        "real/gone.jpg,0,real,Debian nice-wallpapers 1.0-1 (nature/),GPL-2+\n"
    )
    rows = [
        _row(mirror, "img/photo.jpg", generator="real", label=0),  # an evaluation image
        _row(mirror, "img/fake_ext.jpg"),  # the same picture as a PNG: built, found a near duplicate, deleted
        _row(mirror, "img/grid.png", kind="tile_rgb", box="64 0 128 64", sha=mirror["tile_sha"]),  # allowed
        _row(mirror, "img/grid.png", generator="PixArt-Sigma"),  # a held-out family
        {
            **_row(mirror, "img/grid.png", generator="real", label=0),
            "repo": "debian:nice-wallpapers",
            "commit": "1.0-1",
        },
        {**_row(mirror, "img/grid.png"), "repo": "openai/dalle-2-preview"},
    ]
    listing = tmp_path / "list.csv"
    _write_list(listing, rows)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["data", "build-corpus", str(listing), "--out", str(out), "--mirror-root", str(mirror["root"]),
         "--holdout", str(evaluation / "manifest.csv")],
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    for reason in ("evaluation set", "held out for evaluation", "nice-wallpapers", "dalle-2-preview"):
        assert reason in output
    assert "near duplicate of the evaluation image photo.jpg" in output
    assert "1 built, 0 already present, 0 missing, 5 refused of 6 rows" in output
    built = read_dataset(out)
    assert [(item.label, item.subset, item.path.suffix) for item in built] == [(1, "gan", ".png")]
    assert len(list((out / "generated" / "gan").iterdir())) == 1  # the near duplicate is deleted, not kept aside


@pytest.mark.shared
@pytest.mark.skipif(not BENCH_DEV.is_file(), reason="../shared/data/bench-dev is absent")
@pytest.mark.parametrize("listing", [*SHIPPED_LISTS, SHARED / "train-sources.csv"], ids=lambda p: p.name)
def test_no_training_list_draws_from_bench_dev_or_held_out_sources(listing):
    """bench-dev's photos come from Debian wallpaper packages that a photo list could easily draw from again."""
    from nirnet.data.holdout import HoldOut, held_out_rows

    refused = held_out_rows(read_sources(listing), HoldOut.from_manifests(BENCH_DEV))
    assert not refused, [f"{row.describe()}: {why}" for row, why in refused]


def test_fingerprints_match_resized_copies_and_not_other_pictures():
    from nirnet.data.fingerprint import distance, fingerprints, is_near_duplicate

    photo = synthetic_photo(240, 320, seed=3)
    small = Image.fromarray(photo).resize((160, 120), Image.Resampling.BILINEAR)
    square = Image.fromarray(photo[:, 40:280])  # the centre square of the frame
    original = fingerprints(_encode(photo, "PNG"))
    assert fingerprints(Image.fromarray(photo)).shape == (2, 256)
    assert is_near_duplicate(original, fingerprints(_encode(np.asarray(small), "JPEG", quality=75)))
    assert is_near_duplicate(original, fingerprints(square))
    for seed in range(4, 9):
        other = fingerprints(_encode(synthetic_photo(240, 320, seed=seed), "PNG"))
        assert distance(original, other) > 0.2 and not is_near_duplicate(original, other)


def test_fingerprint_of_a_palette_png_with_transparency_is_quiet_and_reads_the_loaders_pixels():
    """Such PNGs (gpt4o rows) made Pillow warn once per image during build-corpus --holdout; the fingerprint now
    reads the pixels the detector reads (:func:`nirnet.data.io.to_rgb`: alpha over the loader's background)."""
    import warnings

    from nirnet.data.fingerprint import distance, fingerprints
    from nirnet.data.io import load_image

    photo = Image.fromarray(synthetic_photo(120, 160, seed=5)).quantize(64)
    buffer = io.BytesIO()
    photo.save(buffer, "PNG", transparency=bytes([200, 0] + [255] * 62))  # partial alpha: stored as bytes
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bits = fingerprints(buffer.getvalue())
    assert distance(bits, fingerprints(load_image(buffer.getvalue()))) == 0
