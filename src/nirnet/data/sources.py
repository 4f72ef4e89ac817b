"""Where images come from: the one expansion of what a user names into items, shared by `detect`, `eval` and
`scale`, so every front end accepts the same files.

An input is a file, a folder (searched recursively), a glob pattern, a CSV or Parquet list (a ``path`` column,
relative paths taken from the list's folder) or a WebDataset-style tar shard (``.tar``). A name that exists is
always taken literally, so ``photo[1].jpg`` is that file and not a pattern. Files found by a folder scan or a
glob are recognised by content: an image extension is taken at its word (a corrupt ``.jpg`` is an error to
report, not a file to hide), anything else is an image when its header is an image's and is listed as skipped
otherwise. Files named one by one, or in a list, are taken as given: a missing one is reported by the loader.
"""

from __future__ import annotations

import codecs
import csv
import errno
import glob
import io
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .io import is_image_path, sniff_image

SHARD_SUFFIXES = (".tar",)
LIST_SUFFIXES = (".csv", ".parquet")


class SourceError(ValueError):
    """An input that cannot be expanded at all (a list without a ``path`` column, undecodable text); one line."""


@dataclass
class Sources:
    """What a set of inputs expands to: image files and tar shards in input order (without duplicates), and the
    files left out with the reason."""

    files: list[Path] = field(default_factory=list)
    shards: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def expand_sources(items: Iterable[str | os.PathLike]) -> Sources:
    """``items`` (files, folders, globs, CSV / Parquet lists, tar shards) -> :class:`Sources`."""
    out = Sources()
    for item in items:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found, left_out = regular_files_under(path)
            out.skipped += left_out
            _sort_found(found, out)
        elif is_shard(path) and path.is_file():
            out.shards.append(path)
        elif path.suffix.lower() in LIST_SUFFIXES and path.is_file():
            out.files += read_path_list(path)
        elif not path.exists() and any(ch in text for ch in "*?["):
            _sort_found(sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()), out)
        else:
            out.files.append(path)  # a missing file is reported by the loader, like any other bad input
    out.files, out.shards = _unique(out.files), _unique(out.shards)
    return out


def image_files_under(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder`` (recursive, sorted), recognised as :func:`expand_sources` does; for
    dataset layouts, whose folders hold images only."""
    found, _ = regular_files_under(Path(folder))
    return [f for f in found if is_image(f) is None]


def is_shard(path: Path) -> bool:
    return path.suffix.lower() in SHARD_SUFFIXES


def is_image(path: Path) -> str | None:
    """``None`` when ``path`` is taken as an image, else why not (its header is read only without an image
    extension)."""
    return None if is_image_path(path) else sniff_image(path)


def _sort_found(found: list[Path], out: Sources) -> None:
    for file in found:
        if is_shard(file):
            out.shards.append(file)
        elif (reason := is_image(file)) is None:
            out.files.append(file)
        else:
            out.skipped.append((file, reason))


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[str] = set()
    return [p for p in paths if not (str(p) in seen or seen.add(str(p)))]


def regular_files_under(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The regular files under ``folder`` (recursive; links to folders are not followed, so no loop), and what
    else is there with the reason it is left out. FIFOs, sockets and devices are never opened (reading a FIFO
    blocks until someone writes to it); broken links and link loops are named, not dropped."""
    files: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    pending = [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as listing:
                entries = list(listing)
        except OSError as exc:
            skipped.append((current, f"cannot list the folder ({exc.strerror or exc})"))
            continue
        for entry in entries:
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                pending.append(path)
            elif (reason := _not_a_regular_file(path)) is None:
                files.append(path)
            else:
                skipped.append((path, reason))
    return sorted(files), sorted(skipped)


def _not_a_regular_file(path: Path) -> str | None:
    """``None`` for a regular file (or a link to one), else what it is, from its metadata alone."""
    try:
        mode = path.stat().st_mode  # follows a link to its target
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if exc.errno == errno.ENOENT and path.is_symlink():
            return "broken symbolic link (its target does not exist)"
        return f"cannot read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "link to a folder (not followed)"
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return f"not a regular file ({kind}; never opened)"


def read_path_list(path: Path) -> list[Path]:
    """The paths of a CSV or Parquet list (its ``path`` column), relative ones taken from the list's folder."""
    column = _parquet_paths(path) if path.suffix.lower() == ".parquet" else _csv_paths(path)
    return [Path(p) if Path(p).is_absolute() else path.parent / p for p in column]


def _csv_paths(path: Path) -> list[str]:
    rows = list(csv.DictReader(io.StringIO(_decode_list(path), newline="")))
    if rows and "path" not in rows[0]:
        raise SourceError(f"{path}: a CSV list needs a 'path' column")
    return [r["path"] for r in rows]


def _parquet_paths(path: Path) -> list[str]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SourceError(f"{path}: reading a Parquet list needs pyarrow (pip install 'nirnet[ray]')") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - Arrow raises several types for a damaged file
        raise SourceError(f"{path}: cannot read the Parquet list ({exc})") from None
    if "path" not in table.column_names:
        raise SourceError(f"{path}: a Parquet list needs a 'path' column")
    return [str(p) for p in table.column("path").to_pylist() if p is not None]


def _decode_list(path: Path) -> str:
    """The text of a CSV list: UTF-8 (spreadsheets often start it with a byte-order mark) or UTF-16 with its
    byte-order mark; undecodable bytes in UTF-8 names are kept (surrogateescape) so such files are found."""
    raw = path.read_bytes()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{path}: not valid UTF-16 ({exc.reason})") from None
    return raw.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="surrogateescape")


def shard_members(shard: str | os.PathLike) -> Iterator[tuple[str, bytes | None, str | None]]:
    """``(name, bytes, error)`` of every image member of a tar shard, named ``shard::member``; members are
    recognised as folder files are (image extension, else content), so side files (labels, captions) are left
    out and an extension-less JPEG is scored. A damaged shard yields one error item."""
    try:
        with tarfile.open(shard) as archive:
            for member in archive:
                if not member.isfile():
                    continue
                handle = archive.extractfile(member)
                data = handle.read() if handle else None
                if data is not None and not is_image_path(member.name) and sniff_image(data) is not None:
                    continue
                yield f"{shard}::{member.name}", data, None
    except (tarfile.TarError, OSError) as exc:
        yield os.fspath(shard), None, f"cannot read tar shard: {exc}"


def write_shard(path: str | os.PathLike, members: dict[str, bytes]) -> Path:
    """Write a WebDataset-style tar shard (``{name: bytes}``); for tests and for packing folders into shards."""
    path = Path(path)
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path
