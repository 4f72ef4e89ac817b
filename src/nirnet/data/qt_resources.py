"""Read the files inside a compiled Qt resource file (``.rcc``), which some packages ship instead of loose images
(GCompris keeps each activity's photos, and their credits, in one ``.rcc``).

The format (Qt's ``rcc`` tool, versions 1-3): a header ``qres`` + version, then the offsets of three tables, all
big-endian. The *tree* is an array of nodes (14 bytes, 22 from version 2 on, which adds a modification time):
name offset (u32), flags (u16), then for a directory its child count and first child index (u32 each), for a file
its locale (2 x u16) and data offset (u32). A *name* is a u16 length, a u32 hash and UTF-16BE characters. A *data*
entry is a u32 size then the bytes: as stored, zlib-compressed behind a 4-byte length (flag 1, ``qCompress``), or
zstd-compressed (flag 4, not read here).
"""

from __future__ import annotations

import struct
import zlib

COMPRESSED, DIRECTORY, COMPRESSED_ZSTD = 1, 2, 4


class QtResourceError(ValueError):
    """Not a readable Qt resource file, or no such member; one line."""


def read_qt_resources(data: bytes) -> dict[str, bytes | None]:
    """Every file of a Qt resource file by its path (``a/b/c.png``, without the leading ``:/``); ``None`` for a
    zstd-compressed file."""
    if data[:4] != b"qres" or len(data) < 20:
        raise QtResourceError("not a Qt resource file (no 'qres' header)")
    version, tree, payload, names = struct.unpack(">iiii", data[4:20])
    if not 1 <= version <= 3:
        raise QtResourceError(f"Qt resource format version {version} is not supported")
    node_size = 14 if version == 1 else 22

    def unpack(fmt: str, offset: int) -> tuple:
        if offset < 0 or offset + struct.calcsize(fmt) > len(data):
            raise QtResourceError("truncated Qt resource file")
        return struct.unpack_from(fmt, data, offset)

    def name_at(offset: int) -> str:
        (length,) = unpack(">H", names + offset)
        start = names + offset + 6  # after the length and the hash
        return data[start : start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes | None] = {}
    pending = [(0, "")]  # (node index, its parent's path)
    visited: set[int] = set()
    while pending:
        index, parent = pending.pop()
        if index in visited:  # a node reached twice: a cycle in a corrupt tree
            raise QtResourceError("corrupt Qt resource tree")
        visited.add(index)
        base = tree + index * node_size
        name_offset, flags = unpack(">IH", base)
        path = f"{parent}{name_at(name_offset)}" if index else ""
        if flags & DIRECTORY:
            count, first = unpack(">II", base + 6)
            pending += [(first + child, f"{path}/" if index else "") for child in range(count)]
            continue
        (offset,) = unpack(">I", base + 10)
        (size,) = unpack(">I", payload + offset)
        blob = data[payload + offset + 4 : payload + offset + 4 + size]
        if flags & COMPRESSED_ZSTD:
            files[path] = None
        elif flags & COMPRESSED:
            try:
                files[path] = zlib.decompress(blob[4:])
            except zlib.error as exc:
                raise QtResourceError(f"{path}: {exc}") from None
        else:
            files[path] = blob
    return files


def qt_resource_member(files: dict[str, bytes | None], member: str) -> bytes:
    """One file of a Qt resource file read by :func:`read_qt_resources` (``member`` with or without a leading ``/``
    or ``:/``)."""
    name = member.removeprefix(":").lstrip("/")
    if name not in files:
        raise QtResourceError(f"no file {name} in the Qt resource file")
    if files[name] is None:
        raise QtResourceError(f"{name} is zstd-compressed, which this reader does not support")
    return files[name]
