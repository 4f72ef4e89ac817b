"""A deterministic validation split of training images, decided by each file's name.

A file is held out when the SHA-1 of its bare name, read as a fraction of 2**32 from its first 8 hex digits,
falls below ``fraction``. The decision depends only on the name, so it is the same on every machine, for every
seed and whichever folder lists the file (a folder listed twice to weight it stays on one side of the split).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Sequence
from pathlib import Path


def is_validation(path: str | Path, fraction: float) -> bool:
    """Whether ``path`` falls in a validation split of ``fraction`` (0 holds nothing out, 1 everything)."""
    if fraction <= 0:
        return False
    digest = hashlib.sha1(Path(path).name.encode("utf-8")).hexdigest()
    return int(digest[:8], 16) / 2**32 < fraction


def split_paths(paths: Sequence[Path], fraction: float) -> tuple[list[Path], list[Path]]:
    """(training paths, validation paths) in their original order; a repeated path repeats on its side."""
    train = [p for p in paths if not is_validation(p, fraction)]
    held = [p for p in paths if is_validation(p, fraction)]
    return train, held


def validation_csv(real: Sequence[Path], generated: Sequence[Path], base: Path) -> str:
    """The held-out images as a ``path,label,generator`` manifest to be saved in folder ``base`` (paths relative
    to it; duplicates dropped), readable by :func:`nirnet.data.datasets.read_dataset` like any csv dataset."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["path", "label", "generator"])
    base = Path(base).resolve()
    for label, paths in ((0, real), (1, generated)):
        for path in dict.fromkeys(Path(p).resolve() for p in paths):
            relative = Path(os.path.relpath(path, base)).as_posix()
            writer.writerow([relative, label, "real" if label == 0 else "generated"])
    return out.getvalue()
