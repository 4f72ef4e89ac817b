"""The imprint bank: every autoencoder's Laplace imprint model in one safetensors file with JSON metadata.

Training needs only the bank, never the autoencoders. File layout: tensors ``<entry name>/<parameter>``; the
safetensors metadata key ``nirnet_bank`` holds JSON ``{"version": 1, "entries": [{name, stride, hidden, ...}]}``
where each entry also records the images it was fitted on and its held-out NLLs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .._atomic import atomic_write
from .laplace import LearnedLaplace

FORMAT_VERSION = 1
KERNEL_KEY = "copula.kernel"  # optional tensor per entry; banks without it still load (independent sampler only)
DEFAULT_BANK = Path(__file__).resolve().parents[1] / "weights" / "imprint_bank.safetensors"


@dataclass
class BankEntry:
    name: str
    stride: int
    hidden: int = 16
    train_images: int = 0
    train_crops: int = 0
    heldout_nll: dict[str, float] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)


class ImprintBank(nn.Module):
    """Learned Laplace imprint models ``g_k`` for K autoencoders, addressable by name and index."""

    def __init__(
        self,
        entries: list[BankEntry],
        models: list[LearnedLaplace],
        kernels: list[torch.Tensor | None] | None = None,
    ) -> None:
        super().__init__()
        if len(entries) != len(models) or not entries:
            raise ValueError("an imprint bank needs one model per entry and at least one entry")
        self.entries = list(entries)
        # ModuleList, not ModuleDict: entry names contain ':' and '.'.
        self.models = nn.ModuleList(models)
        # Colouring kernels of the copula sampler (nirnet.imprint.copula), one per entry or None where not fitted.
        self.kernels = list(kernels) if kernels is not None else [None] * len(entries)
        if len(self.kernels) != len(entries):
            raise ValueError("an imprint bank needs one colouring kernel (or None) per entry")
        self.requires_grad_(False).eval()

    @property
    def has_kernels(self) -> bool:
        """Whether every entry has a colouring kernel (needed by the copula sampler)."""
        return all(k is not None for k in self.kernels)

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def __len__(self) -> int:
        return len(self.entries)

    def params(self, index: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, b)`` of entry ``index`` for images ``x`` in [0, 1]."""
        mu, log_b = self.models[index](x)
        return mu, log_b.exp()

    def subset(self, names: list[str]) -> ImprintBank:
        """A bank with only the named entries (for leave-one-out experiments)."""
        missing = sorted(set(names) - set(self.names))
        if missing or not names:
            raise KeyError(f"not in the bank: {missing}; bank has {self.names}")
        keep = [i for i, e in enumerate(self.entries) if e.name in names]
        return ImprintBank(
            [self.entries[i] for i in keep], [self.models[i] for i in keep], [self.kernels[i] for i in keep]
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically (temporary file, then rename)."""
        tensors = {}
        for entry, model in zip(self.entries, self.models):
            for key, value in model.state_dict().items():
                tensors[f"{entry.name}/{key}"] = value.detach().contiguous()
        for entry, kernel in zip(self.entries, self.kernels):
            if kernel is not None:
                # clone: entries may share one kernel tensor, and safetensors refuses shared storage
                tensors[f"{entry.name}/{KERNEL_KEY}"] = kernel.detach().float().clone()
        meta = {"version": FORMAT_VERSION, "entries": [asdict(e) for e in self.entries]}
        atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"nirnet_bank": json.dumps(meta)}))

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> ImprintBank:
        """Load a bank (default: the one shipped with the package). No pickle is involved."""
        path = Path(path) if path else DEFAULT_BANK
        if not path.is_file():
            raise FileNotFoundError(f"imprint bank not found: {path} (build one with `nirnet imprint fit`)")
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads(handle.metadata()["nirnet_bank"])
            if meta.get("version") != FORMAT_VERSION:
                raise ValueError(f"{path}: bank format {meta.get('version')} is not {FORMAT_VERSION}")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
        entries, models, kernels = [], [], []
        for raw in meta["entries"]:
            entry = BankEntry(**raw)
            model = LearnedLaplace(entry.stride, entry.hidden)
            prefix = f"{entry.name}/"
            kernels.append(tensors.pop(f"{prefix}{KERNEL_KEY}", None))
            model.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
            entries.append(entry)
            models.append(model)
        return cls(entries, models, kernels)
