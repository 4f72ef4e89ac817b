"""Training checkpoints without pickle: safetensors for tensors, JSON for everything else, written atomically.

A checkpoint folder ``step_XXXXXXX/`` holds ``model.safetensors`` + ``config.json`` (a loadable model, see
``NIRNet.from_pretrained``), ``optimizer.safetensors`` (the optimizer's tensors) and ``state.json`` (step, the
optimizer's scalar state and param groups, metrics). ``latest.json`` in the run folder names the newest complete
checkpoint; it is replaced only after the checkpoint folder is fully written, so a crash at any moment leaves the
previous checkpoint usable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .._atomic import atomic_write, atomic_write_text
from ..models.base import load_trainable_state


def _split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    run_dir: str | os.PathLike, step: int, model, optimizer: torch.optim.Optimizer, extra: dict[str, Any], keep: int = 2
) -> Path:
    run_dir = Path(run_dir)
    folder = run_dir / f"step_{step:07d}"
    tmp = run_dir / f".tmp_step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tensors, meta = _split_optimizer_state(optimizer.state_dict())
    atomic_write(tmp / "optimizer.safetensors", lambda t: save_file(tensors, t))
    atomic_write_text(tmp / "state.json", json.dumps({"step": step, "optimizer": meta, **extra}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    atomic_write_text(run_dir / "latest.json", json.dumps({"step": step, "folder": folder.name}))
    old = sorted(p for p in run_dir.glob("step_*") if p.is_dir() and p != folder)
    for stale in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    return folder


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    pointer = Path(run_dir) / "latest.json"
    if not pointer.is_file():
        return None
    folder = Path(run_dir) / json.loads(pointer.read_text())["folder"]
    return folder if (folder / "state.json").is_file() else None


def load_checkpoint(folder: str | os.PathLike, model, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load weights and optimizer state in place; returns ``state.json``."""
    folder = Path(folder)
    state = json.loads((folder / "state.json").read_text())
    weights = load_file(str(folder / "model.safetensors"))
    load_trainable_state(model, weights, str(folder))
    optimizer.load_state_dict(
        _join_optimizer_state(load_file(str(folder / "optimizer.safetensors")), state["optimizer"])
    )
    return state
