"""Files inside a compiled Qt resource file (.rcc), as some packages ship their photos, read directly and through
a source list row (``FILE.rcc!/MEMBER``)."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from nirnet.data.blobs import BlobMissing, BlobSource
from nirnet.data.corpus import build_corpus, read_sources
from nirnet.data.qt_resources import QtResourceError, qt_resource_member, read_qt_resources
from nirnet.testing import synthetic_photo
from test_corpus import _deb, _encode, _write_list


def _rcc(tree: list[tuple[str, int, object]]) -> bytes:
    """A version-2 Qt resource file. ``tree``: nodes in index order as (name, flags, children indices or bytes);
    node 0 is the root directory; a directory's children are consecutive indices."""
    names, payload, nodes = b"", b"", b""
    for name, flags, content in tree:
        name_offset = len(names)
        encoded = name.encode("utf-16-be")
        names += struct.pack(">HI", len(name), 0) + encoded
        if flags & 2:
            nodes += struct.pack(">IHIIQ", name_offset, flags, len(content), content[0] if content else 0, 0)
        else:
            body = struct.pack(">I", len(content)) + zlib.compress(content) if flags & 1 else content
            nodes += struct.pack(">IHhhIQ", name_offset, flags, 0, 0, len(payload), 0)
            payload += struct.pack(">I", len(body)) + body
    header_size = 20
    tree_at, data_at = header_size, header_size + len(nodes)
    names_at = data_at + len(payload)
    return b"qres" + struct.pack(">iiii", 2, tree_at, data_at, names_at) + nodes + payload + names


PHOTO = _encode(synthetic_photo(40, 56, seed=4), "WEBP", quality=80)
NOTE = b"Copyright: someone\nLicense: CC0-1.0\n"
RCC = _rcc(
    [
        ("", 2, [1, 2]),
        ("gcompris", 2, [3, 4]),
        ("top.txt", 0, b"top"),
        ("README", 1, NOTE),  # zlib-compressed, as rcc stores text
        ("alpaca.webp", 0, PHOTO),
    ]
)


def test_reads_every_file_plain_and_compressed():
    files = read_qt_resources(RCC)
    assert files == {"top.txt": b"top", "gcompris/README": NOTE, "gcompris/alpaca.webp": PHOTO}
    assert qt_resource_member(files, "/gcompris/alpaca.webp") == PHOTO
    assert qt_resource_member(files, ":/gcompris/README") == NOTE


def test_bad_resource_files_are_one_line_errors():
    with pytest.raises(QtResourceError, match="no 'qres' header"):
        read_qt_resources(b"PK\x03\x04 a zip")
    with pytest.raises(QtResourceError, match="truncated"):
        read_qt_resources(RCC[:30])
    with pytest.raises(QtResourceError, match="corrupt Qt resource tree"):
        read_qt_resources(_rcc([("", 2, [0])]))  # the root lists itself as its child
    with pytest.raises(QtResourceError, match="no file gcompris/none.webp"):
        qt_resource_member(read_qt_resources(RCC), "gcompris/none.webp")


def test_a_row_reads_a_photo_inside_a_packaged_resource_file(tmp_path):
    (tmp_path / "mirror" / "debian").mkdir(parents=True)
    deb = tmp_path / "mirror" / "debian" / "edu-game-data_3.1-2_all.deb"
    deb.write_bytes(_deb({"usr/share/game/rcc/erase.rcc": RCC}))
    blobs = BlobSource(tmp_path / "mirror")
    path = "usr/share/game/rcc/erase.rcc!/gcompris/alpaca.webp"
    assert blobs.get("debian:edu-game-data", "3.1-2", path) == PHOTO
    with pytest.raises(BlobMissing, match="erase.rcc: no file gcompris/gone.webp"):
        blobs.get("debian:edu-game-data", "3.1-2", "usr/share/game/rcc/erase.rcc!/gcompris/gone.webp")

    listing = tmp_path / "photos.csv"
    row = dict(
        repo="debian:edu-game-data", commit="3.1-2", path=path, generator="real", label=0, license="CC0-1.0",
        sha256=hashlib.sha256(PHOTO).hexdigest(), kind="file", note="alpaca",
    )  # fmt: skip
    _write_list(listing, [row])
    report = build_corpus(read_sources(listing), tmp_path / "out", blobs)
    assert report.ok and report.built == 1
    built = sorted((tmp_path / "out").rglob("*.webp"))
    assert len(built) == 1 and built[0].read_bytes() == PHOTO  # kept byte for byte
