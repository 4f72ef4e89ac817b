"""Shared fixtures: seeding and the location of ../shared/data (integration tests skip without it)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# The default backend (auto) exports each new model to ONNX on the CPU, seconds per tiny test model: tests that do
# not choose a backend score with PyTorch. Set at import, not in a fixture, so that module-scoped fixtures and
# subprocesses see it too; tests/test_runtime.py removes it where auto itself is tested.
os.environ.setdefault("NIRNET_AUTO_BACKEND", "torch")


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data is absent (looked in {SHARED_DATA}); integration test skipped")
    return SHARED_DATA


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved tiny model folder (config.json + model.safetensors, no semantic branch)."""
    import torch

    from nirnet.models import create_model

    folder = tmp_path_factory.mktemp("model") / "m"
    torch.manual_seed(0)
    create_model("test_nirnet", semantic="none").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def headed_dir(model_dir, tmp_path_factory):
    """A copy of the tiny model folder plus a family head (sdxl, flux, gpt4o) fitted on random features of the
    right width, open-set threshold 0 (never unknown)."""
    import hashlib
    import shutil

    from nirnet.family import fit_head
    from nirnet.models import create_model

    folder = tmp_path_factory.mktemp("headed") / "m"
    shutil.copytree(model_dir, folder)
    width = create_model("test_nirnet", semantic="none").head[0].in_features
    x = np.random.default_rng(0).normal(size=(30, width))
    head = fit_head(x, ["sdxl"] * 10 + ["flux"] * 10 + ["gpt4o"] * 10, parts=("head_input",))
    head.threshold, head.model = 0.0, "test_nirnet"
    head.model_weights_sha256 = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    head.save(folder)
    return folder
