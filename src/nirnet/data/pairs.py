"""Aligned real/fake twin pairs for training.

Every item is a pair ``(real crop, fake crop)`` cut from the same place of the same photo, where the fake is

* a *simulator twin*: the real region stamped with a fused, extrapolated Laplace imprint from the imprint bank
  (probability ``p_simulator``), or
* an *autoencoder twin*: the cached round trip of that region through one of the autoencoders
  (:mod:`nirnet.imprint.recon_cache`), or
* (optional) a real generated image from a labelled dataset, paired with a random real photo.

Before that, two shortcuts are removed at the source (``benchmarks/pair_probes.py`` shows they are gone):

* **compression history**: a photo keeps its camera or web JPEG grid, a twin made from it does not. The twin is
  cut at a 16-px aligned offset of the photo and re-encoded with the photo's own quantisation tables and chroma
  subsampling (``match_history``), so both carry the same grid;
* **sharpness**: a twin from a blurry decoder is always smoother than its photo, and a strong simulated imprint
  always noisier. Each twin is blurred or sharpened until its overall fineness (:func:`degrade.sharpness_score`)
  equals its photo's and, where it lost the photo's sensor noise, given grey noise up to the photo's noise floor
  (``match_sharpness``), so only the *structure* of the imprint differs; then each half gets an
  independent random blur or sharpening (``sharpness``), and autoencoder twins are mixed as
  ``x + lambda (D(E(x)) - x)`` with a random ``lambda`` (``ae_mix``), so that smoothness carries no label.

Both halves then get *the same* post-processing draw (blur, resize, JPEG, crop position), so content, format and
compression cannot separate the classes; only the imprint can. Item ``i`` of step ``s`` is fully determined by
``(seed, s, i)``, which is what makes resumed training identical to an uninterrupted run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from . import degrade
from .degrade import SharpnessConfig
from .io import ImageLoadError, load_image
from .recon_cache import ReconEntry
from .tensors import to_float_tensor, to_image, to_uint8_tensor
from .transforms import PreprocessConfig

CROP_MARGIN = 8  # px around a crop that are simulated too: one JPEG block, so every grid phase can occur
GRID = 16  # twins are cut at multiples of this offset, so a photo's JPEG grid (8x8, chroma 16x16) lines up


@dataclass(frozen=True)
class PairConfig:
    # Training crops are what the model reads: crop size, input scale and interpolation come from the model's
    # PreprocessConfig (see :meth:`read`). ``crop_size`` may restate the model's; a different one is an error (set
    # the model's instead: ``model_overrides.crop_size``). ``input_scale`` is the one setting training may hold
    # apart from inference, on purpose: the shipped default was trained at 1.0 and reads at 1.5 (RESULTS 6f).
    crop_size: int | None = None
    input_scale: float | None = None  # the scale training reads images at; None: the model's
    p_simulator: float = 0.5  # share of fakes made by the simulator (the rest: autoencoder twins, if cached)
    p_generated: float = 0.0  # share of fakes taken from real generated images (needs a labelled dataset)
    degrade: degrade.DegradeConfig = field(default_factory=degrade.DegradeConfig)
    match_history: bool = True  # re-encode each fake with its photo's own JPEG tables (see the module docstring)
    match_sharpness: bool = True  # blur or sharpen each twin to its photo's overall fineness (see the docstring)
    # The same for generated images, which are not their photo's twin: each is cut to the region that reaches the
    # crop, its fineness matched to the photo's and the cleaner of the two noised up to the other's noise floor, so
    # "smoother / cleaner / fewer colours than a photo" cannot mark a family (the per-family probes found it did).
    match_generated: bool = False
    match_colour_noise: bool = False  # with match_generated: the added noise is per channel instead of grey
    sharpness: SharpnessConfig = field(default_factory=SharpnessConfig)
    ae_mix: tuple[float, float] = (0.5, 1.0)  # lambda range of x + lambda (D(E(x)) - x) for autoencoder twins

    def read(self, model: PreprocessConfig | None = None) -> PreprocessConfig:
        """How training reads images: the model's ``model`` preprocessing (default: crops of ``crop_size`` or 256 px
        at native scale), at ``input_scale`` when set. ``ValueError`` when ``crop_size`` contradicts the model."""
        if model is None:
            model = PreprocessConfig(crop_size=self.crop_size or PreprocessConfig.crop_size)
        if self.crop_size is not None and self.crop_size != model.crop_size:
            raise ValueError(
                f"data.pairs.crop_size is {self.crop_size} but the model reads {model.crop_size} px crops; training "
                "crops are the model's: drop data.pairs.crop_size or set model_overrides.crop_size"
            )
        return model if self.input_scale is None else model.replace(input_scale=self.input_scale)

    def largest_region(self, read: PreprocessConfig) -> int:
        """The largest region :meth:`region_for` asks for when reading as ``read`` (at the smallest resize)."""
        lo = min(self.degrade.resize_scale[0], 1.0) if self.degrade.resize_prob > 0 else 1.0
        return self.region_for(
            degrade.DegradeParams(resize_scale=lo, crop_size=read.crop_size, input_scale=read.input_scale)
        )

    def region_for(self, params: degrade.DegradeParams) -> int:
        """Side of the region that is simulated before this draw's degradation: the crop plus a margin of
        :data:`CROP_MARGIN` px, at the drawn resize scale times the input scale.

        Only the pixels that can reach the crop are simulated (the simulator's cost is per pixel); the margin lets
        the crop's position vary relative to the JPEG block grid, as it does in the wild.
        """
        scale = (params.resize_scale or 1.0) * params.input_scale
        return int(math.ceil((params.crop_size + CROP_MARGIN) / scale))


def cut_region(img: Image.Image, region: int, rng: np.random.Generator) -> Image.Image:
    """A random square of side ``region`` (or the whole side when shorter) at a :data:`GRID`-aligned offset, so a
    photo's JPEG grid keeps its phase; only these pixels can reach the crop, so nothing else needs processing."""
    w, h = min(img.width, region), min(img.height, region)
    left = int(rng.integers(0, (img.width - w) // GRID + 1)) * GRID
    top = int(rng.integers(0, (img.height - h) // GRID + 1)) * GRID
    return img.crop((left, top, left + w, top + h))


def item_seed(seed: int, step: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, step, index]).generate_state(1)[0])


class PairDataset(Dataset):
    """Map-style dataset over ``(step, slot)`` keys; returns ``uint8 2 x 3 x c x c`` (real, fake) and a kind code.

    Use with :class:`StepSampler`, which hands out ``(step, slot)`` keys in order.
    """

    KINDS = ("simulator", "autoencoder", "generated")

    def __init__(
        self,
        real_paths: Sequence[str | Path],
        config: PairConfig,
        simulator: torch.nn.Module | None = None,
        recon_cache: dict[str, ReconEntry] | None = None,
        generated_paths: Sequence[str | Path] = (),
        seed: int = 0,
        real_weights: Sequence[float] | None = None,
        generated_weights: Sequence[float] | None = None,
        preprocess: PreprocessConfig | None = None,
    ) -> None:
        self.real_paths = [Path(p) for p in real_paths]
        self.config = config
        self.preprocess = config.read(preprocess)  # the model's way of reading images (see PairConfig.read)
        self.simulator = simulator
        self.recon = list((recon_cache or {}).values())
        self.generated = [Path(p) for p in generated_paths]
        self.seed = seed
        # Sampling weights per path (balance by family or source); None draws uniformly, as before they existed.
        self.real_weights = _probabilities(real_weights, len(self.real_paths), "real_weights")
        self.generated_weights = _probabilities(generated_weights, len(self.generated), "generated_weights")
        self._histories: dict[Path, degrade.JpegHistory | None] = {}
        if not self.real_paths and not self.recon:
            raise ValueError("no real images to train on")
        if simulator is None and not self.recon:
            raise ValueError("need an imprint simulator or an autoencoder reconstruction cache to make fakes")

    def __len__(self) -> int:  # the sampler decides the keys; this is only a nominal size
        return max(len(self.real_paths), len(self.recon))

    @property
    def region(self) -> int:
        """The largest region simulated for one pair (see :meth:`PairConfig.largest_region`)."""
        return self.config.largest_region(self.preprocess)

    def _kind(self, rng: np.random.Generator) -> str:
        u = rng.random()
        if self.generated and u < self.config.p_generated:
            return "generated"
        if self.simulator is not None and (not self.recon or u < self.config.p_generated + self.config.p_simulator):
            return "simulator"
        return "autoencoder"

    def _draw_real(self, rng: np.random.Generator) -> Path:
        return _draw(self.real_paths, self.real_weights, rng)

    def _load_with_path(
        self, path: Path, rng: np.random.Generator, pool: Sequence[Path] | None = None
    ) -> tuple[Image.Image, Path]:
        """Load an image; an unreadable one is replaced by another random one of the same ``pool`` (default: the
        real photos), so a bad file never stops training and never changes a label."""
        pool = self.real_paths if pool is None else pool
        for _ in range(10):
            try:
                return load_image(path), path
            except ImageLoadError:
                path = pool[int(rng.integers(len(pool)))]
        raise RuntimeError("ten unreadable images in a row; check the training folder with `nirnet data check`")

    def _load(self, path: Path, rng: np.random.Generator) -> Image.Image:
        return self._load_with_path(path, rng)[0]

    def _history(self, path: Path) -> degrade.JpegHistory | None:
        """The photo's JPEG history when ``match_history`` is on (read once per file)."""
        if not self.config.match_history:
            return None
        if path not in self._histories:
            self._histories[path] = degrade.read_jpeg_history(path)
        return self._histories[path]

    def _simulator_pair(
        self, rng: np.random.Generator, params: degrade.DegradeParams
    ) -> tuple[Image.Image, Image.Image, degrade.JpegHistory | None, None]:
        img, path = self._load_with_path(self._draw_real(rng), rng)
        real = cut_region(img, self.config.region_for(params), rng)
        x = to_float_tensor(real)
        generator = torch.Generator().manual_seed(int(rng.integers(2**31)))
        fake = self.simulator(x, generator).images[0]
        return real, to_image(fake), self._history(path), None

    def _autoencoder_pair(
        self, rng: np.random.Generator, params: degrade.DegradeParams
    ) -> tuple[Image.Image, Image.Image, degrade.JpegHistory | None, None]:
        entry = self.recon[int(rng.integers(len(self.recon)))]
        names = sorted(entry.recons)
        name = names[int(rng.integers(len(names)))]
        lam = float(np.interp(rng.random(), [0, 1], self.config.ae_mix))
        real = self._load(entry.image, rng).crop(entry.box)  # the cache's boxes are 16-px aligned
        fake = load_image(entry.recons[name])
        if lam != 1.0:
            x = np.asarray(real, dtype=np.float32)
            mixed = x + lam * (np.asarray(fake, dtype=np.float32) - x)
            fake = Image.fromarray(np.clip(np.round(mixed), 0, 255).astype(np.uint8))
        return real, fake, self._history(entry.image), None

    def _generated_pair(
        self, rng: np.random.Generator, params: degrade.DegradeParams
    ) -> tuple[Image.Image, Image.Image, degrade.JpegHistory | None, Path]:
        real, path = self._load_with_path(self._draw_real(rng), rng)
        fake, source = self._load_with_path(_draw(self.generated, self.generated_weights, rng), rng, self.generated)
        if self.config.match_generated:  # only these pixels can reach the crop, so only they are matched
            region = self.config.region_for(params)
            real, fake = cut_region(real, region, rng), cut_region(fake, region, rng)
        # A generated PNG has no compression history; it gets the history of the photo it is paired with.
        return real, fake, self._history(path), source

    def _match(
        self, real: Image.Image, fake: Image.Image, kind: str, history: degrade.JpegHistory | None, rng
    ) -> tuple[Image.Image, Image.Image]:
        """Remove the plain cues of a pair before its shared post-processing: a twin is brought to its photo's
        fineness and noise floor; a generated image (not its photo's twin) too, and the cleaner of the two is noised
        up to the other's floor, so "cleaner than a photo" cannot mark it either."""
        if kind != "generated":
            if self.config.match_sharpness:
                fake = degrade.match_noise_floor(degrade.match_sharpness(fake, real), real, rng)
            return real, fake
        if not self.config.match_generated:
            return real, fake
        colour = self.config.match_colour_noise
        fake = degrade.match_noise_floor(degrade.match_sharpness(fake, real), real, rng, colour)
        noised = degrade.match_noise_floor(real, fake, rng, colour)
        if noised is not real:  # re-saved with its own history, as the fake will be: no grid-free noise cue
            real = degrade.apply_jpeg_history(noised, history)
        return real, fake

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        real, fake, kind, _ = self.pair(key)
        return torch.stack([to_uint8_tensor(real), to_uint8_tensor(fake)]), self.KINDS.index(kind)

    def pair(self, key: tuple[int, int]) -> tuple[Image.Image, Image.Image, str, Path | None]:
        """(real crop, fake crop, kind, the generated file the fake came from or None) of one training key; what
        the probes of ``benchmarks/`` read to report shortcuts per generator family."""
        step, slot = key
        rng = np.random.default_rng(item_seed(self.seed, step, slot))
        kind = self._kind(rng)
        p = self.preprocess
        params = degrade.sample_params(self.config.degrade, rng, p.crop_size, p.input_scale, p.interpolation)
        real, fake, history, source = getattr(self, f"_{kind}_pair")(rng, params)
        real, fake = self._match(real, fake, kind, history, rng)
        fake = degrade.apply_jpeg_history(fake, history)
        real = degrade.sharpness_jitter(real, self.config.sharpness, rng)  # independent draws: unpaired on purpose
        fake = degrade.sharpness_jitter(fake, self.config.sharpness, rng)
        if real.size == fake.size:
            real, fake = degrade.apply_paired(real, fake, params)
        else:  # an unpaired generated image: same draw, each at its own size
            real, fake = degrade.apply(real, params), degrade.apply(fake, params)
        return real, fake, kind, source


def _probabilities(weights: Sequence[float] | None, count: int, name: str) -> np.ndarray | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != count or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"{name}: need {count} non-negative weights with a positive sum")
    return np.cumsum(w / w.sum())


def _draw(paths: Sequence[Path], cumulative: np.ndarray | None, rng: np.random.Generator) -> Path:
    """One path: uniform without weights (the draw older recipes made), else by inverse CDF of the weights."""
    if cumulative is None:
        return paths[int(rng.integers(len(paths)))]
    return paths[min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(paths) - 1)]


class StepSampler(torch.utils.data.Sampler):
    """Yields ``(step, slot)`` keys for steps ``start..total-1``; with several processes, each rank takes its
    own slots of the global batch (``slot = rank + k * world``)."""

    def __init__(self, start: int, total: int, batch_pairs: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.total, self.batch_pairs, self.rank, self.world = start, total, batch_pairs, rank, world

    def __iter__(self):
        for step in range(self.start, self.total):
            for slot in range(self.rank, self.batch_pairs, self.world):
                yield step, slot

    def __len__(self) -> int:
        return (self.total - self.start) * len(range(self.rank, self.batch_pairs, self.world))


def collate_pairs(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> real ``B x 3 x c x c``, fake ``B x 3 x c x c`` (uint8) and kind codes ``B``."""
    pairs = torch.stack([p for p, _ in items])
    return pairs[:, 0], pairs[:, 1], torch.tensor([k for _, k in items])
