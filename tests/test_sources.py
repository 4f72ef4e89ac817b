"""The one input layer: `detect`, `scale` and `eval` accept the same files, recognised by content."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.data.datasets import images_under
from nirnet.data.sources import SourceError, expand_sources, shard_members, write_shard
from nirnet.scale import plan_chunks
from nirnet.testing import synthetic_photo


def _encoded(fmt: str, seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(synthetic_photo(64, 80, seed=seed)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """A folder whose names lie: an extension-less JPEG, a PNG named .jpg, a photo, and two non-images."""
    (tmp_path / "photo").write_bytes(_encoded("JPEG", 1))
    (tmp_path / "png_named.jpg").write_bytes(_encoded("PNG", 2))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.png").write_bytes(_encoded("PNG", 3))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "doc.pdf").write_bytes(b"%PDF-1.4 ...")
    return tmp_path


def test_detect_scale_and_eval_accept_the_same_files(mixed, model_dir):
    expected = {"photo", "png_named.jpg", "c.png"}
    result = CliRunner().invoke(app, ["detect", str(mixed), "--json", "--model", str(model_dir), "--workers", "0"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{") :])
    detected = {Path(r["path"]).name for r in payload["results"] if r["error"] is None}
    planned = {Path(p).name for chunk in plan_chunks([mixed], 2) for p in chunk.paths}
    assert detected == planned == {p.name for p in images_under(mixed)} == expected
    assert {Path(s["path"]).name for s in payload["skipped"]} == {"notes.txt", "doc.pdf"}


def test_globs_lists_and_shards(mixed, tmp_path_factory):
    other = tmp_path_factory.mktemp("lists")
    (other / "list.csv").write_text(f"path\n{mixed / 'photo'}\nmissing.png\n")
    (other / "plain.png").write_bytes(_encoded("PNG", 4))
    write_shard(other / "a.tar", {"k0.jpg": _encoded("JPEG", 5), "k1": _encoded("PNG", 6), "k0.json": b"{}"})
    sources = expand_sources([other / "list.csv", str(other / "*.png"), other / "a.tar", str(mixed / "*.txt")])
    assert sources.files == [mixed / "photo", other / "missing.png", other / "plain.png"]
    assert sources.shards == [other / "a.tar"]
    assert [p.name for p, _ in sources.skipped] == ["notes.txt"]
    # Members are recognised by content too: the extension-less PNG is scored, the label file is not.
    assert [name.split("::")[1] for name, _, _ in shard_members(other / "a.tar")] == ["k0.jpg", "k1"]


def test_parquet_lists_and_bad_lists(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"path": ["a.png", "/abs/b.png"]}), tmp_path / "list.parquet")
    assert expand_sources([tmp_path / "list.parquet"]).files == [tmp_path / "a.png", Path("/abs/b.png")]
    (tmp_path / "bad.csv").write_text("file\na.png\n")
    with pytest.raises(SourceError, match="'path' column"):
        expand_sources([tmp_path / "bad.csv"])
