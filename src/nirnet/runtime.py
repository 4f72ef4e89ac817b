"""Where a detector's forward pass runs: ONNX Runtime (``onnx``, CPU only), PyTorch (``torch``) or ``auto`` (the
default: ONNX Runtime on the CPU when it is installed and the model exports, else PyTorch with a one-line note).

ONNX Runtime is several times faster than eager PyTorch on a small CPU for these models (fused conv + norm,
better depthwise kernels; docs/RESULTS.md section 9). The model is exported once (about 20 s for the default) and
kept in the user's cache folder under a fingerprint of its config and weights, so later runs start at once and a
retrained model never reuses a stale graph. Preprocessing and crop averaging stay in :mod:`nirnet.detect`: both
backends see the same crops and return the same logits (to float32 rounding).

``NIRNET_AUTO_BACKEND=torch`` makes ``auto`` pick PyTorch without trying ONNX Runtime (the test suite sets it, so
that building many small detectors does not export each one).
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from .defaults import ONNX_OPSET
from .export import INPUT_NAMES
from .models.base import DetectorModel

BACKENDS = ("auto", "torch", "onnx")
AUTO_ENV = "NIRNET_AUTO_BACKEND"

Forward = Callable[..., torch.Tensor]


def cache_dir() -> Path:
    """``$NIRNET_CACHE``, else ``$XDG_CACHE_HOME/nirnet``, else ``~/.cache/nirnet`` (never inside the package)."""
    if os.environ.get("NIRNET_CACHE"):
        return Path(os.environ["NIRNET_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nirnet"


def model_fingerprint(model: DetectorModel) -> str:
    """SHA-256 of what the exported graph depends on: the config, every tensor of the state (the frozen backbone
    too, since it is in the graph), the opset and the torch version that writes the graph."""
    digest = hashlib.sha256()
    digest.update(model.config.to_json().encode())
    # the input layout too: graphs exported before ``view_index`` existed are not reused
    digest.update(f"opset={ONNX_OPSET};torch={torch.__version__};inputs={','.join(INPUT_NAMES)}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class OnnxForward:
    """``forward(crops, view=None, view_index=None) -> logits`` through ONNX Runtime on the CPU, for an exported copy
    of ``model`` kept in ``cache`` (default :func:`cache_dir`). ``threads``: intra-op threads (default: torch's)."""

    def __init__(self, model: DetectorModel, threads: int | None = None, cache: Path | None = None) -> None:
        check_backend("onnx")
        import onnxruntime as ort

        self.path = (cache or cache_dir()) / "onnx" / f"{model.config.name}-{model_fingerprint(model)[:20]}.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        cached = self.path.is_file()
        try:
            self.session = self._session(ort, options, model, fresh=not cached)
        except Exception:
            if not cached:
                raise
            # A cached file that does not load (cut short by a full disk, written for another ONNX Runtime).
            self.session = self._session(ort, options, model, fresh=True)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def _session(self, ort, options, model: DetectorModel, fresh: bool):
        if fresh:
            from .export import export_onnx  # looked up at call time (tests replace it)

            _note(f"exporting {model.config.name} for ONNX Runtime once (kept in {self.path.parent})")
            # export_onnx is quiet: the exporter's lines would bury that note (and stdout is for results with
            # `nirnet detect --json`).
            try:
                export_onnx(model, self.path, opset=ONNX_OPSET)
            except RuntimeError as exc:
                raise ValueError(f"{exc}; score with the torch backend instead") from exc
            except OSError as exc:  # a read-only home, a full disk
                raise ValueError(
                    f"cannot write the exported model to {self.path.parent} ({exc.strerror or exc}); "
                    "set NIRNET_CACHE to a writable folder"
                ) from exc
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def __call__(
        self, crops: torch.Tensor, view: torch.Tensor | None = None, view_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        feeds = {"crops": crops.detach().cpu().float().numpy()}
        if "view" in self.input_names:
            if view is None:
                raise ValueError("this model reads a semantic view of the whole image; none was given")
            if "view_index" in self.input_names:  # each crop's row of ``view`` (default: one view per crop)
                index = torch.arange(len(crops)) if view_index is None else view_index
                feeds["view_index"] = index.detach().cpu().long().numpy()
            feeds["view"] = view.detach().cpu().float().numpy()
        (logits,) = self.session.run(["logits"], feeds)
        return torch.from_numpy(logits)


def check_backend(backend: str) -> None:
    """A ``ValueError`` that says what to do when ``backend`` is unknown or its packages are missing (callers that
    start workers check first, so the error is one line rather than a failure inside every worker)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnx":
        try:
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401  (the exporter needs it; fail here with the install line, not mid-export)
        except ImportError as exc:
            raise ValueError(
                f"the onnx backend needs ONNX Runtime ({exc.name} is not installed): pip install onnxruntime onnxscript"
            ) from exc


def select_forward(model: DetectorModel, backend: str, device: torch.device) -> tuple[str, Forward]:
    """The backend that runs (``auto`` resolved to ``torch`` or ``onnx``) and the callable that maps
    ``(crops, view)`` to logits on it (see :data:`BACKENDS`)."""
    check_backend(backend)
    if backend == "auto":
        return _auto(model, device)
    if backend == "torch":
        return "torch", model
    if device.type != "cpu":
        raise ValueError(f"the onnx backend runs on the CPU; use the torch backend for device {str(device)!r}")
    return "onnx", OnnxForward(model)


def _auto(model: DetectorModel, device: torch.device) -> tuple[str, Forward]:
    # GPUs run eager PyTorch well; ONNX Runtime is here for CPUs only.
    if device.type != "cpu" or os.environ.get(AUTO_ENV, "").strip().lower() == "torch":
        return "torch", model
    try:
        check_backend("onnx")
        return "onnx", OnnxForward(model)
    except Exception as exc:  # noqa: BLE001  (any failure here has a safe answer: eager PyTorch scores the same)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        reason = first_line if len(first_line) <= 200 else first_line[:199] + "…"
        _note(f"scoring with PyTorch, ONNX Runtime is unavailable ({reason})")
        return "torch", model


def _note(message: str) -> None:
    """One line on stderr (stdout carries results)."""
    print(f"note: {message}", file=sys.stderr, flush=True)
