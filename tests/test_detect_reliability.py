"""`nirnet detect` never loses a result and never hangs: odd folder entries, file lists from spreadsheets, output
targets that cannot be written, full or closed stdout, streamed results, interrupts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from nirnet.cli.main import app
from nirnet.testing import synthetic_photo

runner = CliRunner()


def _photo(path: Path, seed: int = 0) -> Path:
    Image.fromarray(synthetic_photo(64, 80, seed=seed)).save(path)
    return path


def _detect(model_dir: Path, *args: object):
    return runner.invoke(app, ["detect", *map(str, args), "--model", str(model_dir), "--workers", "0"])


def _payload(result) -> dict:
    return json.loads(result.stdout[result.stdout.index("{") :])


# ---------------------------------------------------------------- inputs


def test_folder_scan_reports_fifos_broken_links_and_loops(model_dir, tmp_path):
    _photo(tmp_path / "good.png")
    os.mkfifo(tmp_path / "pipe.png")  # opened for reading, it would block the scan forever
    (tmp_path / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    (tmp_path / "again").symlink_to(tmp_path)  # a link to a folder above: never followed
    result = _detect(model_dir, tmp_path, "--json")
    assert result.exit_code == 0, result.output
    payload = _payload(result)
    assert [Path(r["path"]).name for r in payload["results"]] == ["good.png"]
    skipped = {Path(s["path"]).name: s["reason"] for s in payload["skipped"]}
    assert "FIFO" in skipped["pipe.png"]
    assert "broken symbolic link" in skipped["gone.png"]
    assert "loop" in skipped["loop.png"]
    assert "link to a folder" in skipped["again"]
    assert result.stderr.count("skipped") == 4


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_file_lists_saved_by_spreadsheets_are_read(model_dir, tmp_path, encoding):
    _photo(tmp_path / "a.png")
    (tmp_path / "list.csv").write_bytes("path,label\r\na.png,x\r\n".encode(encoding))
    result = _detect(model_dir, tmp_path / "list.csv", "--json")
    assert result.exit_code == 0, result.output
    assert [Path(r["path"]).name for r in _payload(result)["results"]] == ["a.png"]
