"""Synthetic inputs for tests and benchmarks: odd and malformed images, seeded synthetic photos, labelled datasets.

:func:`write_input_corpus` writes files that a real folder of user images may contain (odd modes, bit depths,
animations, orientations) and files that must be refused (empty, truncated, not images, decompression bombs).
Each :class:`CorpusCase` says whether the loader should accept it.
"""

from __future__ import annotations

import csv
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class CorpusCase:
    name: str
    path: Path
    loads: bool  # True: must load as RGB; False: must raise ImageLoadError
    note: str
    expected_size: tuple[int, int] | None = None  # (width, height) after loading, when it loads


def synthetic_photo(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """A smooth random colour field with sensor-like noise, ``H x W x 3`` uint8 (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((max(2, height // 16), max(2, width // 16), 3)) * 255
    img = Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(img).astype(np.float32) + rng.normal(0, 4, (height, width, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def write_labelled_dataset(root: str | Path, images: list[tuple[str, int, Image.Image]]) -> Path:
    """A dataset folder in the project's layout: each ``(generator, label, image)`` saved as PNG under
    ``generated/`` or ``real/`` ``<generator>/`` and listed in ``manifest.csv`` (path,label,generator)."""
    root = Path(root)
    rows = []
    for i, (generator, label, image) in enumerate(images):
        path = root / ("generated" if label else "real") / generator / f"{generator}{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        rows.append([path.relative_to(root).as_posix(), label, generator])
    with (root / "manifest.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows([["path", "label", "generator"], *rows])
    return root


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None) -> bytes:
    """A PNG written by hand, for what Pillow will not write (16-bit RGB, lying headers)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    body = zlib.compress(rows if rows is not None else b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def write_input_corpus(folder: str | Path, seed: int = 0) -> list[CorpusCase]:
    """Write the corpus into ``folder`` (created if needed) and return its cases."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rgb = Image.fromarray(synthetic_photo(48, 64, seed))
    cases: list[CorpusCase] = []

    def add(name: str, data: bytes | None, loads: bool, note: str, size: tuple[int, int] | None = None) -> None:
        path = folder / name
        if data is None:
            path.mkdir(exist_ok=True)
        else:
            path.write_bytes(data)
        cases.append(CorpusCase(name, path, loads, note, size if loads else None))

    good_jpeg = _save(rgb, "JPEG", quality=90)
    good_png = _save(rgb, "PNG")
    # --- refused
    add("empty.png", b"", False, "zero bytes")
    add("truncated.jpg", good_jpeg[: len(good_jpeg) // 2], False, "JPEG cut in half")
    add("truncated.png", good_png[: len(good_png) // 2], False, "PNG cut in half")
    add("random_bytes.jpg", np.random.default_rng(seed).bytes(4096), False, "random bytes with a .jpg name")
    add("notes.png", b"these are not pixels\n" * 20, False, "a text file with a .png name")
    add("page.jpg", b"<!doctype html><html><body>404</body></html>", False, "an HTML error page saved as .jpg")
    add(
        "drawing.svg.png",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        False,
        "SVG text",
    )
    add("folder.jpg", None, False, "a directory with an image name")
    bad_crc = bytearray(good_png)
    bad_crc[29] ^= 0xFF  # inside the IHDR CRC
    add("bad_crc.png", bytes(bad_crc), False, "PNG whose header checksum is wrong")
    add(
        "bomb.png",
        _raw_png(60_000, 60_000, 8, 2, None),
        False,
        "header claims 60000x60000 (decompression bomb)",
    )
    add("png_header_only.png", good_png[:33], False, "PNG signature and header, no pixel data")
    # --- loaded as documented
    add("rgb.jpg", good_jpeg, True, "plain RGB JPEG", (64, 48))
    add("grey.png", _save(rgb.convert("L"), "PNG"), True, "8-bit greyscale", (64, 48))
    add("grey.jpg", _save(rgb.convert("L"), "JPEG"), True, "greyscale JPEG", (64, 48))
    add("bilevel.png", _save(rgb.convert("1"), "PNG"), True, "1-bit", (64, 48))
    add("palette.png", _save(rgb.convert("P"), "PNG"), True, "palette", (64, 48))
    pal = rgb.convert("P")
    add(
        "palette_transparent.png",
        _save(pal, "PNG", transparency=0),
        True,
        "palette with transparency",
        (64, 48),
    )
    add("grey_alpha.png", _save(rgb.convert("LA"), "PNG"), True, "greyscale + alpha", (64, 48))
    rgba = rgb.convert("RGBA")
    rgba.putalpha(0)
    add("transparent.png", _save(rgba, "PNG"), True, "fully transparent RGBA (-> white)", (64, 48))
    add("cmyk.jpg", _save(rgb.convert("CMYK"), "JPEG"), True, "CMYK JPEG", (64, 48))
    grey16 = (np.asarray(rgb.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    add("grey16.png", _save(Image.fromarray(grey16), "PNG"), True, "16-bit greyscale", (64, 48))
    rgb16 = (np.asarray(rgb, dtype=">u2") * 257).astype(">u2")
    rows = b"".join(b"\x00" + rgb16[y].tobytes() for y in range(rgb16.shape[0]))
    add("rgb16.png", _raw_png(64, 48, 16, 2, rows), True, "16-bit per channel RGB", (64, 48))
    as_float = np.asarray(rgb.convert("L"), dtype=np.float32) / 255.0
    add(
        "float.tif",
        _save(Image.fromarray(as_float, mode="F"), "TIFF"),
        True,
        "32-bit float in [0, 1]",
        (64, 48),
    )
    as_int = np.asarray(rgb.convert("L"), dtype=np.int32) * 1000
    add(
        "int32.tif",
        _save(Image.fromarray(as_int, mode="I"), "TIFF"),
        True,
        "32-bit int, wide range",
        (64, 48),
    )
    frames = [Image.fromarray(synthetic_photo(48, 64, seed + i)).convert("P") for i in range(3)]
    add(
        "animated.gif",
        _save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        True,
        "GIF",
        (64, 48),
    )
    rgb_frames = [Image.fromarray(synthetic_photo(48, 64, seed + i)) for i in range(3)]
    add(
        "animated.png",
        _save(rgb_frames[0], "PNG", save_all=True, append_images=rgb_frames[1:]),
        True,
        "APNG",
        (64, 48),
    )
    add(
        "multipage.tif",
        _save(rgb_frames[0], "TIFF", save_all=True, append_images=rgb_frames[1:]),
        True,
        "multi-page TIFF",
        (64, 48),
    )
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    add("rotated_exif.jpg", _save(rgb, "JPEG", exif=exif), True, "EXIF orientation 6 (-> 48x64)", (48, 64))
    add("tiny.png", _save(Image.new("RGB", (1, 1), (10, 20, 30)), "PNG"), True, "1x1 pixel", (1, 1))
    add("rgb.webp", _save(rgb, "WEBP", quality=90), True, "WebP", (64, 48))
    add("rgb.bmp", _save(rgb, "BMP"), True, "BMP", (64, 48))
    add("UPPER.JPEG", good_jpeg, True, "upper-case extension", (64, 48))
    return cases
