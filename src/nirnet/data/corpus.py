"""Build a training corpus from a pinned list of public images (``train-sources.csv`` and lists like it).

Each row names one image: ``repo,commit,path,box,generator,label,license,sha256,kind,note``. ``kind=file`` rows keep
the file's bytes exactly (``sha256`` of the bytes); ``kind=tile_rgb`` rows cut ``box`` (``x0 y0 x1 y1``) out of a
decoded grid, check ``sha256`` of the tile's RGB uint8 pixels (row-major, H x W x 3) and store it as lossless PNG.
A row whose hash does not match is reported and left out, never kept. The output folder gets:

* the images, under ``generated/<generator>/`` and ``real/<generator>/``, with the extension of their real format
  (some ``.jpg`` files hold PNG bytes);
* ``manifest.csv`` in the project's CSV layout (``path,label,generator,source,license`` + ``family``), readable by
  every command that takes a dataset;
* ``LICENSES.md``: per family, the generators, repositories and licences the images come under;
* ``build-report.json``: what was built, skipped as already present, and missing (with the reason).

A rerun checks what is there (hash) and only fetches what is missing or wrong.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image

from .._atomic import atomic_write, atomic_write_text
from .blobs import BlobMissing, BlobSource
from .families import family_of

COLUMNS = ("repo", "commit", "path", "box", "generator", "label", "license", "sha256", "kind", "note")
KINDS = ("file", "tile_rgb")
MANIFEST_COLUMNS = ("path", "label", "generator", "source", "license", "family")
FORMAT_EXT = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


class SourceListError(ValueError):
    """The source list cannot be read (missing columns, a malformed row); names the file and line."""


@dataclass(frozen=True)
class SourceRow:
    line: int  # line in the CSV, for messages
    repo: str
    commit: str
    path: str
    box: tuple[int, int, int, int] | None
    generator: str
    label: int
    license: str
    sha256: str
    kind: str
    note: str = ""

    @property
    def family(self) -> str:
        return family_of(self.generator)

    def describe(self) -> str:
        box = f" box {' '.join(map(str, self.box))}" if self.box else ""
        return f"line {self.line} ({self.generator}: {self.repo}:{self.path}{box})"

    def output_stem(self) -> str:
        """A file name unique to (repo, path, box), readable, safe on every filesystem."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{self.repo}__{Path(self.path).with_suffix('')}")
        if self.box:
            slug += "__" + "-".join(map(str, self.box))
        if len(slug) > 150:  # long paths: keep the readable start, make it unique with a hash of the whole
            slug = slug[:130] + "_" + hashlib.sha1(slug.encode()).hexdigest()[:12]
        return slug


def read_sources(path: str | Path) -> list[SourceRow]:
    """Parse and validate a source list; raises :class:`SourceListError` naming the first bad line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceListError(f"{path}: cannot read ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise SourceListError(f"{path}: missing columns {', '.join(missing)} (needs {','.join(COLUMNS)})")
    rows = []
    for line, raw in enumerate(reader, start=2):
        rows.append(_parse_row(raw, line, path))
    if not rows:
        raise SourceListError(f"{path}: no rows")
    return rows


def _parse_row(raw: dict[str, str], line: int, path: Path) -> SourceRow:
    def bad(why: str) -> SourceListError:
        return SourceListError(f"{path}:{line}: {why}")

    kind = (raw["kind"] or "").strip()
    if kind not in KINDS:
        raise bad(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    box = None
    if (raw["box"] or "").strip():
        try:
            x0, y0, x1, y1 = (int(v) for v in raw["box"].split())
        except ValueError:
            raise bad(f"box must be four integers 'x0 y0 x1 y1', got {raw['box']!r}") from None
        if not (0 <= x0 < x1 and 0 <= y0 < y1):
            raise bad(f"box {raw['box']!r} is empty or negative")
        box = (x0, y0, x1, y1)
    if kind == "tile_rgb" and box is None:
        raise bad("a tile_rgb row needs a box")
    if kind == "file" and box is not None:
        raise bad("a file row keeps the whole file; a box needs kind tile_rgb")
    label = (raw["label"] or "").strip()
    if label not in ("0", "1"):
        raise bad(f"label must be 0 or 1, got {label!r}")
    digest = (raw["sha256"] or "").strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise bad("sha256 must be 64 hex digits")
    for column in ("repo", "commit", "path", "generator"):
        if not (raw[column] or "").strip():
            raise bad(f"{column} is empty")
    return SourceRow(
        line=line,
        repo=raw["repo"].strip(),
        commit=raw["commit"].strip(),
        path=raw["path"].strip(),
        box=box,
        generator=raw["generator"].strip(),
        label=int(label),
        license=(raw["license"] or "").strip(),
        sha256=digest,
        kind=kind,
        note=(raw["note"] or "").strip(),
    )


# ---------------------------------------------------------------- one row
class RowError(Exception):
    """A row that cannot be built (hash mismatch, undecodable tile, box outside the image)."""


def sniff_format(data: bytes) -> str:
    """The image format of some bytes by their content (``JPEG``, ``PNG``, ...), not by a file name."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format or "unknown"
    except Exception:  # noqa: BLE001 (any decoder error means: not an image Pillow knows)
        return "unknown"


def tile_pixels(data: bytes, box: tuple[int, int, int, int]) -> Image.Image:
    """The RGB tile ``box`` of an encoded grid image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if box[2] > img.width or box[3] > img.height:
                raise RowError(f"box {box} lies outside the {img.width}x{img.height} image")
            return img.convert("RGB").crop(box)
    except RowError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise RowError(f"cannot decode the grid image ({exc})") from None


def pixel_sha256(img: Image.Image) -> str:
    return hashlib.sha256(img.convert("RGB").tobytes()).hexdigest()


def _existing(row: SourceRow, folder: Path) -> Path | None:
    """The already built file of a row when it is there and its hash matches."""
    for candidate in sorted(folder.glob(row.output_stem() + ".*")):
        if candidate.name.startswith("."):
            continue
        try:
            if row.kind == "file" and hashlib.sha256(candidate.read_bytes()).hexdigest() == row.sha256:
                return candidate
            if row.kind == "tile_rgb":
                with Image.open(candidate) as img:
                    if pixel_sha256(img) == row.sha256:
                        return candidate
        except Exception:  # noqa: BLE001 (a damaged file is rebuilt)
            continue
    return None


def build_row(row: SourceRow, blobs: BlobSource, folder: Path) -> Path:
    """Fetch, check and write one row; returns the written path. Raises BlobMissing or RowError."""
    data = blobs.get(row.repo, row.commit, row.path)
    if row.kind == "file":
        digest = hashlib.sha256(data).hexdigest()
        if digest != row.sha256:
            raise RowError(f"sha256 of the file is {digest[:12]}..., the list says {row.sha256[:12]}...")
        fmt = sniff_format(data)
        if fmt == "unknown":
            raise RowError("the file is not an image Pillow can read")
        target = folder / (row.output_stem() + FORMAT_EXT.get(fmt, Path(row.path).suffix.lower() or ".bin"))
        atomic_write(target, lambda tmp: Path(tmp).write_bytes(data))
        return target
    tile = tile_pixels(data, row.box)
    digest = pixel_sha256(tile)
    if digest != row.sha256:
        raise RowError(f"sha256 of the tile's pixels is {digest[:12]}..., the list says {row.sha256[:12]}...")
    target = folder / (row.output_stem() + ".png")
    atomic_write(target, lambda tmp: tile.save(tmp, format="PNG"))  # lossless; no text chunks are written
    return target


# ---------------------------------------------------------------- the whole list
@dataclass
class BuildReport:
    built: int = 0
    present: int = 0
    missing: list[dict] = field(default_factory=list)  # {"line", "row", "reason"}
    refused: list[dict] = field(default_factory=list)  # built, then found to be evaluation data and removed

    @property
    def ok(self) -> bool:
        return not self.missing

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def class_folder(label: int) -> str:
    return "generated" if label == 1 else "real"


def build_corpus(
    rows: Iterable[SourceRow],
    out_dir: str | Path,
    blobs: BlobSource,
    warn: Callable[[str], None] = lambda message: None,
    advance: Callable[[], None] = lambda: None,
    refuse: Callable[[Path], str | None] | None = None,
) -> BuildReport:
    """Build every row into ``out_dir`` (see the module docstring). ``warn`` gets one line per row left out.
    ``refuse``: given a built file, the reason it must not be kept (e.g. it is an evaluation image at another size:
    :meth:`nirnet.data.holdout.HoldOut.near_duplicate`), or ``None``; a refused file is deleted and reported."""
    out_dir = Path(out_dir)
    rows = list(rows)
    report = BuildReport()
    kept: list[tuple[SourceRow, Path]] = []
    for row in rows:
        folder = out_dir / class_folder(row.label) / row.generator
        path = existing = _existing(row, folder) if folder.is_dir() else None
        if path is not None:
            report.present += 1
        else:
            try:
                path = build_row(row, blobs, folder)
                report.built += 1
            except (BlobMissing, RowError) as exc:
                report.missing.append({"line": row.line, "row": row.describe(), "reason": str(exc)})
                warn(f"left out {row.describe()}: {exc}")
        reason = refuse(path) if path is not None and refuse is not None else None
        if reason:
            path.unlink(missing_ok=True)
            if existing:
                report.present -= 1
            else:
                report.built -= 1
            report.refused.append({"line": row.line, "row": row.describe(), "reason": reason})
            warn(f"refused {row.describe()}: {reason}")
        elif path is not None:
            kept.append((row, path))
        advance()
    write_manifest(kept, out_dir)
    atomic_write_text(out_dir / "LICENSES.md", licence_summary(rows, kept))
    atomic_write_text(out_dir / "build-report.json", json.dumps(report.to_dict(), indent=1) + "\n")
    return report


def write_manifest(kept: list[tuple[SourceRow, Path]], out_dir: Path) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for row, path in sorted(kept, key=lambda item: str(item[1])):
        source = f"{row.repo}@{row.commit}:{row.path}" + (f" box {' '.join(map(str, row.box))}" if row.box else "")
        relative = path.relative_to(out_dir).as_posix()
        writer.writerow([relative, row.label, row.generator, source, row.license, row.family])
    return atomic_write_text(out_dir / "manifest.csv", buffer.getvalue())


def licence_summary(rows: list[SourceRow], kept: list[tuple[SourceRow, Path]]) -> str:
    """Markdown: per family, its generators, image counts, repositories (with commits) and licences."""
    built = {r.line for r, _ in kept}
    by_family: dict[str, list[SourceRow]] = defaultdict(list)
    for row in rows:
        by_family["real photographs" if row.label == 0 else row.family].append(row)
    lines = [
        "# Licences of the built corpus",
        "",
        "Images keep the terms of their sources; this table groups them by generator family. `built` counts the",
        "images of this build, `listed` the rows of the source list.",
        "",
        "| family | generators | built / listed | repositories | licences |",
        "|---|---|---|---|---|",
    ]
    for family in sorted(by_family):
        group = by_family[family]
        gens = ", ".join(sorted({r.generator for r in group}))
        repos = "; ".join(sorted({f"{r.repo}@{r.commit[:10]}" for r in group}))
        licences = "; ".join(sorted({r.license for r in group if r.license})) or "none stated"
        count = sum(r.line in built for r in group)
        lines.append(f"| {family} | {gens} | {count} / {len(group)} | {repos} | {licences} |")
    return "\n".join(lines) + "\n"
