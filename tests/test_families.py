"""The family table and the leave-family-out folds agree with the training lists the project ships."""

import csv
from collections import Counter
from pathlib import Path

import pytest

from nirnet.data.families import LEAVE_OUT_FOLDS, family_of

ROOT = Path(__file__).resolve().parents[1]
TRAIN_SOURCES = ROOT.parent / "shared" / "data" / "train-sources.csv"


def generated_generators(path: Path) -> set[str]:
    with path.open(newline="") as fh:
        return {row["generator"] for row in csv.DictReader(fh) if row["label"].strip() == "1"}


def test_every_family_is_held_out_exactly_once():
    counts = Counter(family for fold in LEAVE_OUT_FOLDS for family in fold)
    assert counts and max(counts.values()) == 1


@pytest.mark.parametrize("path", sorted((ROOT / "sources").glob("*.csv")), ids=lambda p: p.name)
def test_every_generator_of_a_shipped_list_has_a_fold(path):
    held_out = {family for fold in LEAVE_OUT_FOLDS for family in fold}
    missing = {g: family_of(g) for g in generated_generators(path) if family_of(g) not in held_out}
    assert not missing, f"families in no leave-family-out fold: {missing}"


def test_every_generator_of_train_sources_has_a_fold():
    if not TRAIN_SOURCES.exists():
        pytest.skip(f"{TRAIN_SOURCES} not present (shared data)")
    held_out = {family for fold in LEAVE_OUT_FOLDS for family in fold}
    missing = {g: family_of(g) for g in generated_generators(TRAIN_SOURCES) if family_of(g) not in held_out}
    assert not missing, f"families in no leave-family-out fold: {missing}"
