"""ONNX export of a detector: crops (and the semantic view, when the model has one) in, one logit per crop out.

The exported graph is the whole trainable model: noise branch, frequency branch and head, plus the frozen semantic
backbone when it exports. Preprocessing is not in the graph; the ONNX metadata carries what a runtime needs to
reproduce it as JSON under ``nirnet``: the model's ``preprocess`` (crop size, crops per image and their positions,
input scale, alignment, interpolation: ``nirnet.data.transforms``), the whole-image view size when the model
reads one, and the decision threshold. Crops are ``N x 3 x crop_size x crop_size`` RGB in [0, 1] cut from the
image resized by ``input_scale``; the image's probability is ``sigmoid(mean of its crops' logits)``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._atomic import atomic_write
from .defaults import ONNX_OPSET
from .models.base import DetectorModel

#: The graph's inputs, in order; a model uses the first one, two or three (``view_index``: frozen_probe models).
INPUT_NAMES = ("crops", "view", "view_index")


class _Exportable(nn.Module):
    """``forward(crops[, view[, view_index]]) -> logits`` (the layout ONNX needs: plain tensors): one view per crop,
    or, for models that read ``view_index``, one view per image and each crop's row of it."""

    def __init__(self, model: DetectorModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, crops: torch.Tensor, view: torch.Tensor | None = None, view_index: torch.Tensor | None = None
    ) -> torch.Tensor:
        if view_index is not None:
            return self.model(crops, view, view_index=view_index)
        return self.model(crops, view)


def example_inputs(model: DetectorModel, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(seed)
    c = model.config
    size = c.preprocess.crop_size
    crops = torch.rand(batch, 3, size, size, generator=generator)
    if not c.view_size:
        return (crops,)
    if not model.reads_view_index:
        return crops, torch.rand(batch, 3, c.view_size, c.view_size, generator=generator)
    # fewer views than crops from 3 crops on (an image's crops share its view); at least 2, since the exporter
    # fixes a dimension whose example size is 1
    views = batch - 1 if batch >= 3 else batch
    index = torch.arange(batch) % views
    return crops, torch.rand(views, 3, c.view_size, c.view_size, generator=generator), index


def export_onnx(model: DetectorModel, path: str | os.PathLike, opset: int = ONNX_OPSET, verbose: bool = False) -> Path:
    """Write ``model`` as ONNX to ``path`` (atomically) with a dynamic batch dimension; returns the path. The
    exporter's progress lines and warnings are hidden unless ``verbose`` (a failure's cause is in the exception)."""
    path = Path(path)
    wrapper = _Exportable(model).eval()
    inputs = example_inputs(model)
    names = list(INPUT_NAMES[: len(inputs)])
    batch = torch.export.Dim("batch", min=1)
    dynamic_shapes = {name: {0: batch} for name in names}
    if "view_index" in names:  # one view per image: its own batch size
        dynamic_shapes["view"] = {0: torch.export.Dim("views", min=1)}
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    try:
        with quiet, warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            program = torch.onnx.export(
                wrapper,
                inputs,
                input_names=names,
                output_names=["logits"],
                opset_version=opset,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
            )
    except Exception as exc:  # the exporter raises many types; say which model part to look at
        branch = " (the semantic backbone may not export; try a model without it)" if model.semantic else ""
        raise RuntimeError(f"ONNX export of {model.config.name} failed{branch}: {exc}") from exc
    program.model.metadata_props["nirnet"] = json.dumps(onnx_metadata(model))
    # A unique temporary name: several processes (serve workers, Ray actors) may export the same model at once.
    return atomic_write(path, lambda tmp: program.save(tmp, external_data=False))


def onnx_metadata(model: DetectorModel) -> dict:
    c = model.config
    return {
        "name": c.name,
        "inputs": "crops: N x 3 x crop_size x crop_size RGB in [0, 1]"
        + ("; view: N x 3 x view_size x view_size, the whole image resized" if c.view_size else ""),
        "output": "logits: one per crop; probability = sigmoid(mean of an image's crop logits)",
        "preprocess": c.preprocess.to_dict(),  # nirnet.data.transforms.PreprocessConfig: how crops are cut
        "view_size": c.view_size,
        "threshold": c.threshold,
        "config": json.loads(c.to_json()),
    }


@dataclass
class OnnxCheck:
    max_abs_diff: float
    batch: int
    max_abs_logit: float = 0.0  # the largest |logit| PyTorch gave on the same inputs

    def within(self, tolerance: float) -> bool:
        """Whether the gap is at most ``tolerance`` per unit of logit size (and absolute below |logit| 1): float32
        logits of several hundred, which random crops give a linear head on standardised features, carry rounding
        gaps of 1e-4 themselves, while their probabilities are 0 or 1 either way."""
        return self.max_abs_diff <= tolerance * max(1.0, self.max_abs_logit)


def check_onnx(model: DetectorModel, path: str | os.PathLike, batch: int = 3, seed: int = 1) -> OnnxCheck:
    """Run the exported file in ONNX Runtime and PyTorch on the same random inputs; the largest logit gap (and the
    largest logit, the scale the gap is judged by: :meth:`OnnxCheck.within`)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = example_inputs(model, batch, seed)
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
    (onnx_logits,) = session.run(["logits"], feeds)
    with torch.inference_mode():
        torch_logits = _Exportable(model).eval()(*inputs).float().numpy()
    return OnnxCheck(float(np.abs(onnx_logits - torch_logits).max()), batch, float(np.abs(torch_logits).max()))
