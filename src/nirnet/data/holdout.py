"""What training data must never contain: the images, packages, repositories and generator families kept for
evaluation. A source list that draws from them would make every held-out number a training number, so the shipped
lists are checked against this (tests/test_corpus.py) and ``nirnet data build-corpus`` refuses such rows.

Two kinds of rule:

* fixed names (the project's held-out repositories, the PyPI wheel and the generator families of the wild set);
* an evaluation manifest in the project's CSV layout (``path,label,generator,source,...``, e.g. bench-dev's):
  every file it lists (by SHA-256 of its bytes) and every Debian package named in its ``source`` column
  (``Debian <package> <version> ...``): another photo of the same package is the same photographer's, the same
  post-processing, so it is held out too; and, once built, any image that is one of its images at another size or
  quality (:mod:`nirnet.data.fingerprint`), which another package or repository may ship.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .blobs import DEBIAN
from .corpus import SourceRow
from .fingerprint import fingerprints, is_near_duplicate

HELD_OUT_REPOS = frozenset(
    {
        "comfyanonymous/comfyui_examples",
        "openai/dalle-2-preview",
        "kwai-kolors/kolors",
        "pixart-alpha/pixart-alpha",
        "tencent/hunyuandit",
        "majedelhelou/denoising_datasets",
        "elischwartz/imagenet-sample-images",
        "drewnoakes/metadata-extractor-images",
        "pypi:comfyui-workflow-templates-media-image",
    }
)
HELD_OUT_FAMILIES = (
    "dall-e",
    "dalle",
    "hunyuan",
    "kolors",
    "pixart",
    "chroma",
    "auraflow",
    "cosmos",
    "z-image",
    "lumina",
    "omnigen",
    "hidream",
    "qwen-image",
)
_DEBIAN_SOURCE = re.compile(r"^Debian\s+(\S+)\s", re.IGNORECASE)


@dataclass
class HoldOut:
    """Files (SHA-256 of their bytes) and Debian packages of one or more evaluation sets."""

    sha256: set[str] = field(default_factory=set)
    packages: set[str] = field(default_factory=set)
    images: list[Path] = field(default_factory=list)  # for near duplicates: same picture, other size or quality
    _prints: list[tuple[Path, np.ndarray]] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_manifests(cls, *manifests: str | Path) -> HoldOut:
        held = cls()
        for manifest in map(Path, manifests):
            with open(manifest, newline="", encoding="utf-8") as fh:
                for rec in csv.DictReader(fh):
                    path = manifest.parent / rec["path"]
                    if path.is_file():
                        held.sha256.add(hashlib.sha256(path.read_bytes()).hexdigest())
                        held.images.append(path)
                    match = _DEBIAN_SOURCE.match(rec.get("source") or "")
                    if match:
                        held.packages.add(match.group(1).lower())
        return held

    def why_held_out(self, row: SourceRow) -> str | None:
        """``None`` when ``row`` may be trained on, else one line saying which rule it breaks."""
        repo = row.repo.strip().lower()
        if repo in HELD_OUT_REPOS:
            return f"{row.repo} is held out for evaluation"
        family = row.generator.strip().lower()
        if row.label == 1 and any(family.startswith(name) for name in HELD_OUT_FAMILIES):
            return f"generator family {row.generator!r} is held out for evaluation"
        if repo.startswith(DEBIAN) and repo[len(DEBIAN) :] in self.packages:
            return f"Debian package {repo[len(DEBIAN) :]} is a source of an evaluation set"
        if row.kind == "file" and row.sha256.lower() in self.sha256:
            return "the file is an image of an evaluation set"
        return None

    def near_duplicate(self, image: str | Path) -> str | None:
        """``None`` unless ``image`` (a built file) is an evaluation image resized or re-encoded: then one line
        naming it. The evaluation images are fingerprinted on the first call."""
        if not self.images:
            return None
        if self._prints is None:
            self._prints = [(path, fingerprints(path)) for path in self.images]
        try:
            mine = fingerprints(image)
        except (OSError, ValueError):  # an unreadable file is the builder's to report, not a duplicate
            return None
        for path, theirs in self._prints:
            if is_near_duplicate(mine, theirs):
                return f"a near duplicate of the evaluation image {path.name} (same picture, other size or quality)"
        return None


def held_out_rows(rows: list[SourceRow], holdout: HoldOut | None = None) -> list[tuple[SourceRow, str]]:
    """The rows of a source list that break a hold-out rule, each with the reason."""
    holdout = holdout or HoldOut()
    found = [(row, holdout.why_held_out(row)) for row in rows]
    return [(row, why) for row, why in found if why]
