"""The user-facing inference API.

    from nirnet import Detector
    detector = Detector.from_pretrained()          # the default model shipped in the package
    results = detector.predict(["a.jpg", "b.png"])  # paths, PIL images or [0, 1] tensors
    results[0].probability, results[0].verdict, results[0].crop_logits
    detector.predict("c.png", attribute=True)[0].family  # a generator family or "unknown" (needs a family head)

Each image is scored on the crops its model's ``preprocess`` names (``nirnet.data.transforms``); the crop logits are
averaged and passed through a sigmoid. The verdict uses the model's calibrated threshold (``config.threshold``,
set by ``nirnet eval --calibrate``). A file that cannot be read yields a result with ``error`` set and no score;
it never stops the rest.

With ``attribute=True`` each image whose verdict is ``generated`` also gets ``family`` (a family the model's family
head knows, or ``unknown``) and ``family_scores`` (the head's top 3 with probabilities), from the same crops
(:mod:`nirnet.family`); the probability and verdict are the same with or without it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .data.io import ImageLoadError, load_image
from .data.tensors import to_uint8_array
from .data.transforms import inference_transform
from .decision import DecisionRule
from .defaults import DEFAULT_BACKEND, DEFAULT_BATCH_SIZE, DEFAULT_DEVICE, DEFAULT_WORKERS
from .family import Attribution, FamilyHead, FamilyHeadError, image_features
from .models.base import DetectorModel
from .models.registry import create_model, list_models, load_model, pretrained_folder
from .runtime import select_forward

#: The embedded default: the frozen-feature stack fitted on the multi-family corpus (docs/MODEL_CARD.md). It carries
#: nirnet_tiny_texture_dn, the default before it, as a frozen member.
DEFAULT_MODEL = "nirnet_stack"
#: Below this side there is no imprint to read (a 1 x 1 image would be upscaled into pure interpolation); such
#: images are answered with an error rather than a meaningless probability.
MIN_SIDE = 32


def check_scorable(img: Image.Image, source: str) -> Image.Image:
    """``img`` if it is large enough to score, else :class:`ImageLoadError`."""
    if min(img.size) < MIN_SIDE:
        width, height = img.size
        raise ImageLoadError(source, f"image is {width}x{height}, too small to score (sides must be >= {MIN_SIDE} px)")
    return img


@dataclass
class PreparedImage:
    """An image reduced to what the model reads, so the decoded full image can be freed at once: uint8
    native-resolution crops and, for models whose semantic branch reads the whole image, the uint8 view."""

    crops: torch.Tensor  # K x 3 x S x S uint8
    view: torch.Tensor | None  # 1 x 3 x V x V uint8
    width: int
    height: int


def prepare_image(config, img: Image.Image, num_crops: int | None = None) -> PreparedImage:
    """:class:`PreparedImage` of an RGB image under a model config: its :func:`inference_transform`, as uint8."""
    read = inference_transform(config)(img, num_crops, as_uint8=True)
    return PreparedImage(read.crops, read.view, img.width, img.height)


def prepare_source(
    config, source, name: str, num_crops: int | None = None, decode=load_image
) -> tuple[PreparedImage | None, str | None]:
    """Decode (``decode``, default :func:`load_image`), size-check and prepare one input: ``(prepared, None)``, or
    ``(None, reason)`` when it cannot be scored. The one place detect, serve and scale turn an input into crops."""
    try:
        img = check_scorable(decode(source), name)
    except ImageLoadError as exc:
        return None, exc.reason
    return prepare_image(config, img, num_crops), None


class _PrepareDataset(Dataset):
    """Decodes and prepares one file per item (in a worker); errors are returned, not raised."""

    def __init__(self, paths: list[str | os.PathLike], config, num_crops: int | None) -> None:
        self.paths = paths
        self.config = config
        self.num_crops = num_crops or config.preprocess.num_crops

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[str, PreparedImage | None, str | None]:
        source = str(self.paths[index])
        return (source, *prepare_source(self.config, self.paths[index], source, self.num_crops))


def _as_list(items: list) -> list:
    return items


def _per_image(logits: torch.Tensor, owner: torch.Tensor, indices) -> list[tuple[float, list[float]]]:
    """(probability, crop logits) per image: the mean of its crops' logits through a sigmoid."""
    return [(float(torch.sigmoid(logits[owner == i].mean())), logits[owner == i].tolist()) for i in indices]


def _one_thread(_: int) -> None:
    torch.set_num_threads(1)


ImageInput = str | os.PathLike | Image.Image | torch.Tensor


#: The result schema, one row per image: JSON, CSV, Parquet (`scale`) and HTTP all write these fields, with these
#: names and types (:meth:`Prediction.to_row`); a front end may add detail after them (crop logits, image size).
ROW_SCHEMA: dict[str, type] = {
    "path": str,
    "probability": float,
    "verdict": str,
    "error": str,
    "model": str,
    "threshold": float,
    "family": str,  # a known generator family or "unknown"; only for generated verdicts with attribution asked
    "family_scores": dict,  # {family: probability}, the top 3; flat outputs (CSV, Parquet) hold it as JSON text
}
ROW_FIELDS = tuple(ROW_SCHEMA)


def flat_row(row: dict) -> dict:
    """A result row for a flat file (CSV, Parquet): the ``dict`` fields (family scores) as JSON text."""
    return {k: json.dumps(v) if isinstance(v, dict) else v for k, v in row.items()}


@dataclass
class Prediction:
    source: str
    probability: float | None = None  # probability that the image is AI-generated
    verdict: str | None = None  # "generated" or "real" at the model's threshold
    crop_logits: list[float] = field(default_factory=list)
    error: str | None = None  # why the image could not be scored
    model: str | None = None  # the model that scored it
    threshold: float | None = None  # the threshold the verdict was made at
    family: str | None = None  # generator family or "unknown" (attribution asked and verdict generated)
    family_scores: dict[str, float] | None = None  # top-3 families with probabilities

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_row(self) -> dict:
        """The result as a row of :data:`ROW_FIELDS`, the same for every output."""
        return {
            "path": self.source,
            "probability": self.probability,
            "verdict": self.verdict,
            "error": self.error,
            "model": self.model,
            "threshold": self.threshold,
            "family": self.family,
            "family_scores": self.family_scores,
        }

    def to_dict(self) -> dict:
        """:meth:`to_row` plus the crop logits (JSON outputs)."""
        return {**self.to_row(), "crop_logits": self.crop_logits}


def _as_image(item: ImageInput) -> tuple[str, Image.Image]:
    if isinstance(item, torch.Tensor):
        if item.ndim != 3 or item.shape[0] != 3:
            raise ImageLoadError("<tensor>", f"expected a 3 x H x W tensor in [0, 1], got shape {tuple(item.shape)}")
        return "<tensor>", check_scorable(Image.fromarray(to_uint8_array(item)), "<tensor>")
    if isinstance(item, Image.Image):
        source = f"<PIL image {item.size[0]}x{item.size[1]}>"
        return source, check_scorable(load_image(item), source)
    return str(item), check_scorable(load_image(item), str(item))


class Detector:
    def __init__(
        self,
        model: DetectorModel,
        threshold: float | DecisionRule | None = None,
        device: str | torch.device = DEFAULT_DEVICE,
        batch_size: int = DEFAULT_BATCH_SIZE,
        backend: str = DEFAULT_BACKEND,
        family_head: FamilyHead | None = None,
    ) -> None:
        if torch.device(device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device!r} asked for, but this machine has no usable CUDA GPU; use cpu")
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        # (crops, view) -> logits on the chosen backend (nirnet.runtime); self.model stays for noise maps and config.
        # self.backend is the one that runs (auto resolved), so reports say which it was.
        self.backend, self.forward = select_forward(self.model, backend, self.device)
        # The decision rule: an override (a threshold or a rule), else the model's calibrated threshold.
        self.rule = DecisionRule.of(threshold, model.config.threshold)
        self.batch_size = batch_size
        self.source: str | None = None  # where the weights came from (set by from_pretrained)
        self.family_head = family_head  # generator-family attribution (nirnet.family); None: the model has none
        self.family_head_problem: str | None = None  # why a head in the model folder was not loaded

    @classmethod
    def from_pretrained(cls, model: str | os.PathLike | None = None, **kwargs) -> Detector:
        """``model``: a folder written by ``save_pretrained`` / training, or a registered name with shipped
        weights; ``None`` = the default model embedded in the package."""
        name_or_path = model or DEFAULT_MODEL
        path = Path(name_or_path)
        if path.is_dir():
            detector = cls(load_model(path), **kwargs)
            detector.source = str(path.resolve())
            return detector._with_family_head(path)
        if str(name_or_path) in list_models(pretrained=True):
            detector = cls(create_model(str(name_or_path), pretrained=True), **kwargs)
            detector.source = f"shipped:{name_or_path}"
            return detector._with_family_head(pretrained_folder(str(name_or_path)))
        shipped = ", ".join(list_models(pretrained=True))
        raise FileNotFoundError(
            f"no model folder or shipped model named {name_or_path!r} (shipped: {shipped or 'none'}; a folder "
            "holds config.json and model.safetensors)"
        )

    def _with_family_head(self, folder: Path) -> Detector:
        """Load the model folder's family head when it has one and it was fitted on these weights; otherwise the
        reason is kept for :meth:`require_family_head` (detection itself never depends on the head)."""
        if self.family_head is not None or not FamilyHead.present(folder):
            return self
        try:
            head = FamilyHead.load(folder)
        except FamilyHeadError as exc:
            self.family_head_problem = str(exc)
            return self
        fitted_on = head.model_weights_sha256
        if fitted_on is not None and fitted_on != self.provenance()["weights_sha256"]:
            self.family_head_problem = (
                f"the family head in {folder} was fitted on other weights than this model's; refit it with "
                "`nirnet family fit`"
            )
            return self
        self.family_head = head
        return self

    def require_family_head(self) -> FamilyHead:
        """The family head, or a one-line :class:`~nirnet.family.FamilyHeadError` saying why there is none."""
        if self.family_head is not None:
            return self.family_head
        raise FamilyHeadError(
            self.family_head_problem
            or f"model {self.name} has no family head, so it cannot attribute a generator family; fit one with "
            "`nirnet family fit --model MODEL --corpus DATASET --out FOLDER` and detect with --model FOLDER"
        )

    @property
    def name(self) -> str:
        return self.model.config.name

    def provenance(self) -> dict[str, str | None]:
        """Which weights these are: their source and the SHA-256 of the model file (for reports)."""
        import hashlib

        if self.source is None:
            return {"source": None, "weights_sha256": None}
        shipped = self.source.startswith("shipped:")
        folder = pretrained_folder(self.source.split(":", 1)[1]) if shipped else Path(self.source)
        weights = folder / "model.safetensors"
        digest = hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None
        return {"source": self.source, "weights_sha256": digest}

    @property
    def threshold(self) -> float:
        return self.rule.threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        self.rule = DecisionRule(value)  # validated as at construction

    def verdict(self, probability: float) -> str:
        """``"generated"`` at or above the threshold, else ``"real"`` (:class:`~nirnet.decision.DecisionRule`)."""
        return self.rule.verdict(probability)

    def result(
        self,
        source: str,
        scored: tuple[float, list[float]] | None = None,
        error: str | None = None,
        attribution: Attribution | None = None,
    ) -> Prediction:
        """The :class:`Prediction` of one input: from its (probability, crop logits), or its error; every front
        end makes its results here, so verdict, model, threshold and family are filled in one way. The family
        is kept only for a generated verdict."""
        if scored is None:
            return Prediction(source, error=error, model=self.name, threshold=self.threshold)
        probability, logits = scored
        verdict = self.verdict(probability)
        if verdict != "generated":
            attribution = None
        family, family_scores = (attribution.family, attribution.scores) if attribution else (None, None)
        return Prediction(source, probability, verdict, logits, None, self.name, self.threshold, family, family_scores)

    @torch.inference_mode()
    def attribute_prepared(
        self, items: Sequence[PreparedImage], scored: Sequence[tuple[float, list[float]]]
    ) -> list[Attribution | None]:
        """The family of each prepared image whose verdict is generated (``None`` for the others), from its
        crops' features through the PyTorch model (the head reads features, which the ONNX graph does not give);
        the scores themselves are left as they are."""
        head = self.require_family_head()
        generated = [i for i, (p, _) in enumerate(scored) if self.verdict(p) == "generated"]
        out: list[Attribution | None] = [None] * len(items)
        if generated:
            answers = head.answer(image_features(self.model, [items[i] for i in generated], head.parts))
            for i, answer in zip(generated, answers):
                out[i] = answer
        return out

    def prepare(self, img: Image.Image, num_crops: int | None = None) -> PreparedImage:
        return prepare_image(self.model.config, img, num_crops)

    @torch.inference_mode()
    def score_prepared(self, items: Sequence[PreparedImage]) -> list[tuple[float, list[float]]]:
        """The one scoring core (``detect``, ``eval`` and ``serve`` all end here): (probability, crop logits) of
        prepared images, crops of several images batched together, ``batch_size`` crops per forward."""
        if not items:
            return []
        flat = torch.cat([item.crops for item in items])
        owner = torch.cat([torch.full((len(item.crops),), i) for i, item in enumerate(items)])
        views = torch.cat([item.view for item in items]) if items[0].view is not None else None
        logits = []
        for start in range(0, len(flat), self.batch_size):
            crops = flat[start : start + self.batch_size].to(self.device).float().div_(255)
            view, extra = None, {}
            if views is not None:
                rows = owner[start : start + self.batch_size]  # one view per crop, unless the model takes an index
                if self.model.reads_view_index:  # each image's view once, and each crop's row of it
                    rows, index = torch.unique_consecutive(rows, return_inverse=True)
                    extra["view_index"] = index.to(self.device)
                view = views[rows].to(self.device).float().div_(255)
            logits.append(self.forward(crops, view, **extra).float().cpu())
        return _per_image(torch.cat(logits), owner, range(len(items)))

    def predict_images(self, images: Sequence[Image.Image]) -> list[tuple[float, list[float]]]:
        """(probability, crop logits) of RGB PIL images, with crops from several images batched together."""
        return self.score_prepared([self.prepare(img) for img in images])

    def predictions(
        self, entries: Sequence[tuple[str, PreparedImage | None, str | None]], attribute: bool = False
    ) -> list[Prediction]:
        """The results of (source, prepared image or ``None``, error) entries, in their order: the readable ones
        scored together, their generated verdicts attributed when asked, each unreadable one with its error.
        Every front end that prepares its own inputs (paths, uploads, tar shards) ends here."""
        good = [item for _, item, _ in entries if item is not None]
        scored = self.score_prepared(good)
        families = self.attribute_prepared(good, scored) if attribute else [None] * len(good)
        answers = iter(zip(scored, families))
        results = []
        for source, item, error in entries:
            if item is None:
                results.append(self.result(source, error=error))
            else:
                score, family = next(answers)
                results.append(self.result(source, score, attribution=family))
        return results

    def predict(self, inputs: ImageInput | Iterable[ImageInput], attribute: bool = False) -> list[Prediction]:
        """Score paths, PIL images or tensors; unreadable inputs get ``error`` set instead of a score.
        ``attribute``: also name the generator family of generated verdicts (needs a family head)."""
        if attribute:
            self.require_family_head()
        if isinstance(inputs, (str, os.PathLike, Image.Image, torch.Tensor)):
            inputs = [inputs]
        results: list[Prediction] = []
        entries: list[tuple[str, PreparedImage | None, str | None]] = []
        for item in inputs:  # prepared a batch at a time, so only one batch of images is held
            try:
                source, img = _as_image(item)
                entries.append((source, self.prepare(img), None))
            except ImageLoadError as exc:
                entries.append((exc.source, None, exc.reason))
            if len(entries) == self.batch_size:
                results += self.predictions(entries, attribute)
                entries = []
        return results + self.predictions(entries, attribute)

    def predict_paths(
        self,
        paths: Sequence[str | os.PathLike],
        workers: int = DEFAULT_WORKERS,
        num_crops: int | None = None,
        attribute: bool = False,
    ) -> Iterator[Prediction]:
        """Score many files in order, yielding one :class:`Prediction` each. Decoding and cropping run in
        ``workers`` DataLoader processes, overlapped with the model; unreadable files yield ``error``.
        ``attribute``: also name the generator family of generated verdicts (needs a family head)."""
        if attribute:
            self.require_family_head()
        dataset = _PrepareDataset(list(paths), self.model.config, num_crops)
        loader = DataLoader(
            dataset,
            batch_size=max(1, self.batch_size // dataset.num_crops),
            num_workers=workers,
            collate_fn=_as_list,
            worker_init_fn=_one_thread,
        )
        for batch in loader:
            yield from self.predictions(batch, attribute)

    @torch.inference_mode()
    def explain(self, image: ImageInput) -> dict[str, np.ndarray | float]:
        """The probability plus :meth:`noise_maps`: the extracted noise map (``H x W x 3``, of the centre crop) and
        the log-magnitude spectrum of that noise map (``H x W``, zero frequency in the centre)."""
        _, img = _as_image(image)
        prob, _ = self.predict_images([img])[0]
        return {"probability": prob, **self.noise_maps(img)}

    @torch.inference_mode()
    def noise_maps(self, img: Image.Image) -> dict[str, np.ndarray]:
        """The noise map of an RGB image's centre crop and its spectrum, without scoring the image."""
        return self.noise_maps_of_crop(inference_transform(self.model.config).crops(img, num_crops=1))

    @property
    def has_noise_map(self) -> bool:
        """Whether the model has a noise branch, so :meth:`explain` can draw its noise map."""
        return getattr(self.model, "imprint", None) is not None

    def require_noise_map(self) -> None:
        """A ``ValueError`` saying why, when the model has no noise branch to draw a noise map from."""
        if not self.has_noise_map:
            raise ValueError(f"model {self.name} has no noise branch, so there is no noise map to show")

    @torch.inference_mode()
    def noise_maps_of_crop(self, crop: torch.Tensor) -> dict[str, np.ndarray]:
        """:meth:`noise_maps` of a ``1 x 3 x S x S`` crop in [0, 1]."""
        self.require_noise_map()
        noise = self.model.noise_map(crop.to(self.device))[0].float().cpu()
        grey = noise.mean(0)
        spectrum = torch.fft.fftshift(torch.fft.fft2(grey - grey.mean()).abs().add(1e-8).log())
        return {"noise_map": noise.permute(1, 2, 0).numpy(), "spectrum": spectrum.numpy()}
