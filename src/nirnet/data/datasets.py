"""Readers for the standard dataset layouts of AI-image detection.

Every reader returns a sorted list of :class:`Sample` (path, label, subset); label 0 = real, 1 = generated.
``subset`` names the generator or class folder that the image belongs to, so results can be reported per subset.

Layouts (``read_dataset(root, layout="auto")`` picks one):

* ``forensynths``: ``<root>/<subset>/0_real`` and ``1_fake``, also nested (``<subset>/<class>/0_real``) or
  directly ``<root>/0_real``; the subset is the first folder under ``root``.
* ``genimage``: ``<root>/<generator>/{train,val}/{nature,ai}``.
* ``flat``: ``<root>/real`` and ``<root>/fake`` (searched recursively); one subset named after ``root``.
* ``csv``: a manifest with the columns ``path,label[,generator]`` (paths relative to the CSV file); ``root``
  is the CSV file or a folder holding ``manifest.csv``.

Adding a layout: write ``_detect_x(root) -> bool`` and ``_read_x(root, split) -> list[Sample]`` and add them to
:data:`LAYOUTS`; auto-detection tries the layouts in order.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .sources import image_files_under

REAL, FAKE = 0, 1


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    subset: str


class DatasetLayoutError(ValueError):
    """The folder or file does not match any (or the requested) dataset layout."""


def images_under(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted), recognised by content as `detect` and `scale` do (see
    :mod:`nirnet.data.sources`), so `eval` reads the same files from a folder."""
    return image_files_under(folder)


# ---------------------------------------------------------------- forensynths
def _forensynths_class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_dir() and p.name in ("0_real", "1_fake"))


def _detect_forensynths(root: Path) -> bool:
    return root.is_dir() and bool(_forensynths_class_dirs(root))


def _read_forensynths(root: Path, split: str | None) -> list[Sample]:
    samples = []
    for class_dir in _forensynths_class_dirs(root):
        rel = class_dir.parent.relative_to(root)
        subset = rel.parts[0] if rel.parts else root.name
        label = REAL if class_dir.name == "0_real" else FAKE
        samples += [Sample(p, label, subset) for p in images_under(class_dir)]
    return samples


# ---------------------------------------------------------------- genimage
_GENIMAGE_CLASSES = {"nature": REAL, "ai": FAKE}


def _genimage_class_dirs(root: Path) -> list[tuple[str, str, Path]]:
    found = []
    for gen_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for split_dir in sorted(p for p in gen_dir.iterdir() if p.is_dir() and p.name in ("train", "val")):
            for cls_dir in sorted(p for p in split_dir.iterdir() if p.is_dir() and p.name in _GENIMAGE_CLASSES):
                found.append((gen_dir.name, split_dir.name, cls_dir))
    return found


def _detect_genimage(root: Path) -> bool:
    return root.is_dir() and bool(_genimage_class_dirs(root))


def _read_genimage(root: Path, split: str | None) -> list[Sample]:
    samples = []
    for generator, split_name, cls_dir in _genimage_class_dirs(root):
        if split is not None and split_name != split:
            continue
        label = _GENIMAGE_CLASSES[cls_dir.name]
        samples += [Sample(p, label, generator) for p in images_under(cls_dir)]
    return samples


# ---------------------------------------------------------------- flat
def _detect_flat(root: Path) -> bool:
    return root.is_dir() and (root / "real").is_dir() and (root / "fake").is_dir()


def _read_flat(root: Path, split: str | None) -> list[Sample]:
    subset = root.resolve().name
    return [Sample(p, REAL, subset) for p in images_under(root / "real")] + [
        Sample(p, FAKE, subset) for p in images_under(root / "fake")
    ]


# ---------------------------------------------------------------- csv
def _csv_file(root: Path) -> Path | None:
    if root.is_file() and root.suffix.lower() == ".csv":
        return root
    if root.is_dir() and (root / "manifest.csv").is_file():
        return root / "manifest.csv"
    return None


def _detect_csv(root: Path) -> bool:
    return _csv_file(root) is not None


def _parse_label(value: str, where: str) -> int:
    text = value.strip().lower()
    if text in ("0", "real", "nature"):
        return REAL
    if text in ("1", "fake", "ai", "generated"):
        return FAKE
    raise DatasetLayoutError(f"{where}: label must be 0/1 (or real/fake), got {value!r}")


def _read_csv(root: Path, split: str | None) -> list[Sample]:
    csv_path = _csv_file(root)
    if csv_path is None:
        raise DatasetLayoutError(f"{root}: no CSV manifest found")
    base = csv_path.parent
    samples = []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = set(reader.fieldnames or [])
        if not {"path", "label"} <= fields:
            raise DatasetLayoutError(f"{csv_path}: needs the columns path,label[,generator]; found {sorted(fields)}")
        for line_no, row in enumerate(reader, start=2):
            label = _parse_label(row["label"] or "", f"{csv_path}:{line_no}")
            subset = (row.get("generator") or "").strip() or ("real" if label == REAL else "fake")
            path = Path(row["path"].strip())
            samples.append(Sample(path if path.is_absolute() else base / path, label, subset))
    return samples


LAYOUTS: dict[str, tuple[Callable[[Path], bool], Callable[[Path, str | None], list[Sample]]]] = {
    "csv": (_detect_csv, _read_csv),
    "forensynths": (_detect_forensynths, _read_forensynths),
    "genimage": (_detect_genimage, _read_genimage),
    "flat": (_detect_flat, _read_flat),
}


def detect_layout(root: str | Path) -> str:
    """Name of the first layout in :data:`LAYOUTS` that matches ``root``."""
    root = Path(root)
    if not root.exists():
        raise DatasetLayoutError(f"{root}: does not exist")
    for name, (detect, _) in LAYOUTS.items():
        if detect(root):
            return name
    raise DatasetLayoutError(
        f"{root}: cannot tell the dataset layout. Expected one of: a CSV manifest (path,label[,generator]) "
        "or a folder with manifest.csv; ForenSynths folders 0_real/1_fake; GenImage "
        "<generator>/{train,val}/{nature,ai}; or real/ and fake/ folders."
    )


def read_dataset(root: str | Path, layout: str = "auto", split: str | None = None) -> list[Sample]:
    """Read the samples of a dataset at ``root``; ``split`` filters GenImage's train/val folders."""
    root = Path(root)
    name = detect_layout(root) if layout == "auto" else layout
    if name not in LAYOUTS:
        raise DatasetLayoutError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}")
    samples = LAYOUTS[name][1](root, split)
    if not samples:
        raise DatasetLayoutError(f"{root}: layout {name!r} matched but holds no images")
    return sorted(samples, key=lambda s: (s.subset, s.label, str(s.path)))


def count_by_subset(samples: Iterable[Sample]) -> dict[str, dict[str, int]]:
    """``{subset: {"real": n, "fake": n}}`` for a summary table."""
    counts = Counter((s.subset, s.label) for s in samples)
    subsets = sorted({subset for subset, _ in counts})
    return {s: {"real": counts.get((s, REAL), 0), "fake": counts.get((s, FAKE), 0)} for s in subsets}


def real_image_paths(sources: Iterable[str | Path], limit: int | None = None) -> list[Path]:
    """Real photos from folders (every image under them) or datasets (their label-0 images).

    A folder with a ``manifest.csv`` counts as a dataset. ``limit`` keeps that many paths spread evenly over the
    sorted list (not the first ones, so every sub-folder is represented).
    """
    paths: list[Path] = []
    for source in map(Path, sources):
        if source.is_dir() and not (source / "manifest.csv").is_file():
            paths += images_under(source)
        else:
            paths += [s.path for s in read_dataset(source) if s.label == REAL]
    if limit and limit < len(paths):
        paths = [paths[i * len(paths) // limit] for i in range(limit)]
    return paths
