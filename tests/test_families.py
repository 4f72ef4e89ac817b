"""The family table and the leave-family-out folds agree with the training lists the project ships."""

import csv
from collections import Counter
from pathlib import Path

import pytest

from nirnet.data.families import LEAVE_OUT_FOLDS, family_of

ROOT = Path(__file__).resolve().parents[1]
TRAINING_LISTS = [ROOT.parent / "shared" / "data" / "train-sources.csv", *sorted((ROOT / "sources").glob("*.csv"))]


def test_every_family_is_held_out_exactly_once():
    counts = Counter(family for fold in LEAVE_OUT_FOLDS for family in fold)
    assert counts and max(counts.values()) == 1


@pytest.mark.parametrize("path", TRAINING_LISTS, ids=lambda p: p.name)
def test_every_generator_of_a_training_list_has_a_fold(path):
    if not path.exists():
        pytest.skip(f"{path} not present (shared data)")
    with path.open(newline="") as fh:
        generators = {row["generator"] for row in csv.DictReader(fh) if row["label"].strip() == "1"}
    held_out = {family for fold in LEAVE_OUT_FOLDS for family in fold}
    missing = {g: family_of(g) for g in generators if family_of(g) not in held_out}
    assert not missing, f"families in no leave-family-out fold: {missing}"
