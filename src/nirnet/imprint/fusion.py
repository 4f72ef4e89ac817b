"""Fusion, extrapolation, sampling and embedding of imprints: the simulator that makes pseudo-fakes.

For each image in a batch:

1. choose ``models_per_sample`` entries of the bank at random (all of them when ``None``);
2. draw ``w ~ Dirichlet(alpha)`` over them and push it outside the simplex: ``w' = (1 + beta) w - beta / m``
   (still sums to 1; with ``beta > 0`` some weights are negative, i.e. *extrapolated* generators);
3. fuse the per-pixel Laplace parameters: ``mu* = sum w'_k mu_k``, ``b* = max(sum w'_k b_k, b_min)``;
4. sample ``n ~ Laplace(mu*, b*)`` by inverse CDF and embed ``x~ = quantize_uint8(clip(x - gamma n))`` with
   ``gamma ~ U[gamma_lo, gamma_hi]``.

The sign: a residual is ``r = x - D(E(x))``, so an autoencoder's own twin is ``x - r``; a simulated twin subtracts
the sampled residual. (Adding it stamps the mirror image of the imprint: a blurring decoder's imprint would
sharpen.) ``tests/test_imprint.py::test_simulated_twin_moves_like_the_round_trip`` pins the direction.

Two samplers (``SimulatorConfig.sampler``): ``independent`` draws every pixel and channel on its own;
``copula`` keeps the same Laplace marginals but correlates neighbouring pixels and colour channels the way the
real residuals are correlated (:mod:`nirnet.imprint.copula`; needs a bank with colouring kernels).

Works on CPU (inside data-loader workers) or on a GPU batch; every draw comes from the given ``torch.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .bank import ImprintBank
from .copula import correlated_normal
from .laplace import image_cells, laplace_quantile_centred, sample_laplace, tile_phase_table

SAMPLERS = ("independent", "copula")


@dataclass(frozen=True)
class SimulatorConfig:
    alpha: float = 1.0  # Dirichlet concentration (1 = uniform over the simplex)
    beta: float = 0.3  # extrapolation: 0 keeps weights in the simplex
    b_min: float = 1e-3  # floor of the fused Laplace scale (in [0, 1] pixel units)
    gamma: tuple[float, float] = (0.2, 1.0)  # imprint strength range
    models_per_sample: int | None = 3  # None: fuse all bank entries
    # Include each model's linear 3x3 term of mu (the image-dependent, mostly smoothing part of an imprint);
    # False keeps only the grid-periodic tables and their content modulation (an ablation knob).
    linear: bool = True
    sampler: str = "independent"  # or "copula": spatially and cross-channel correlated draws
    # Multiplies the fused scale b* before sampling (1 = the fitted spread; 0 = the mean imprint mu* alone).
    b_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"simulator.sampler must be one of {SAMPLERS}, got {self.sampler!r}")
        if self.b_scale < 0:
            raise ValueError(f"simulator.b_scale must be >= 0, got {self.b_scale}")


@dataclass
class SimulatorOutput:
    images: torch.Tensor  # N x 3 x H x W in [0, 1], quantised to 1/255 steps
    noise: torch.Tensor  # the embedded imprint gamma * n (before clipping)
    weights: torch.Tensor  # N x K fused weights w' (0 for models not chosen)
    gamma: torch.Tensor  # N


def _block_size(bank: ImprintBank, limit: int = 64) -> int | None:
    """Smallest block that holds whole phase periods of every model and whole quarter-resolution cells."""
    block = 4
    for model in bank.models:
        if model.low_res != 4:
            return None
        block = math.lcm(block, model.stride)
    return block if block <= limit else None


def _expand_cells(maps: torch.Tensor, tables: torch.Tensor) -> torch.Tensor:
    """``sum_k maps[:, k] * tables[k]`` at full resolution.

    ``maps`` is ``N x K x C x (rows of cells) x (cols of cells)`` with 4 x 4 pixel cells, ``tables`` is
    ``K x C x B x B`` repeated every B pixels (B a multiple of 4); returns ``N x C x H x W``.
    """
    n, k, c, hq, wq = maps.shape
    block = tables.shape[-1]
    q = block // 4
    maps = maps.view(n, k, c, hq // q, q, wq // q, q)
    tables = tables.view(k, c, q, 4, q, 4)
    # One contraction over k (einsum turns it into a batched matrix product), then one copy into image layout.
    out = torch.einsum("nkchywx,kcyrxs->nchyrwxs", maps, tables)
    return out.reshape(n, c, hq * 4, wq * 4)


def extrapolate(w: torch.Tensor, beta: float) -> torch.Tensor:
    """``(1 + beta) w - beta / m`` for weights ``w`` over ``m`` models (last dimension)."""
    return (1 + beta) * w - beta / w.shape[-1]


class ImprintSimulator(nn.Module):
    def __init__(self, bank: ImprintBank, config: SimulatorConfig = SimulatorConfig()) -> None:
        super().__init__()
        if config.sampler == "copula" and not bank.has_kernels:
            missing = [n for n, k in zip(bank.names, bank.kernels) if k is None]
            raise ValueError(
                f"the copula sampler needs colouring kernels, and these bank entries have none: {missing} "
                "(add them with `nirnet imprint copula`)"
            )
        self.bank = bank
        self.config = config

    def draw_weights(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``N x K`` fused weights: Dirichlet over a random subset per sample, then extrapolated."""
        k = len(self.bank)
        m = k if self.config.models_per_sample is None else max(1, min(self.config.models_per_sample, k))
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
        rng = np.random.default_rng(seed)  # numpy: torch's Dirichlet cannot take a Generator
        weights = np.zeros((batch, k), dtype=np.float32)
        for i in range(batch):
            chosen = rng.choice(k, size=m, replace=False)
            w = rng.dirichlet(np.full(m, self.config.alpha))
            weights[i, chosen] = extrapolate(torch.from_numpy(w), self.config.beta).numpy()
        return torch.from_numpy(weights)

    def fused_params(self, x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu*, b*)`` for images ``x`` given ``N x K`` weights; models with zero weight are not evaluated.

        Equal to ``sum_k w_k * bank.params(k, x)`` (then the ``b_min`` floor), computed without materialising any
        model's full-resolution maps: because fusion is linear, each model's weight is folded into its
        quarter-resolution content maps, its 3x3 linear filters are summed into one filter per image, and the
        per-phase tables of all drawn models are applied in one contraction over a block view of the image. That
        is what keeps simulation cheap in a data loader (see ``benchmarks/simulation_cost.py``). Each model's own
        floor of ``b`` (1e-4) is not applied here; the fused ``b`` gets the larger ``b_min`` floor anyway.
        """
        block = _block_size(self.bank)
        if block is None:  # strides that do not tile a small block: evaluate each model in full
            return self._fused_params_per_model(x, weights)
        n, c, h, w = x.shape
        weights = weights.to(x.device, x.dtype)
        # Content maps see the image padded to whole cells (as in LearnedLaplace.forward); the maps are then
        # padded to whole blocks, which only adds values outside the image.
        padded = F.pad(x, (0, (-w) % 4, 0, (-h) % 4), mode="replicate") if (h % 4 or w % 4) else x
        hb, wb = -(-h // block), -(-w // block)
        q = block // 4  # quarter-resolution cells per block side
        drawn = [k for k in range(len(self.bank)) if bool((weights[:, k] != 0).any())]
        # Per model k: mu_k = T_mu,k * w(1 + a) + T_b,k * w d and b_k = T_b,k * w exp(c), where the T are per-pixel
        # tables (periodic within a block) and a, c, d quarter-resolution maps. Summing over k is then one
        # contraction of the stacked maps with the stacked tables per output (zero where a model was not drawn).
        maps_mu = x.new_zeros(n, 2 * len(drawn), c, hb * q, wb * q)
        maps_b = x.new_zeros(n, len(drawn), c, hb * q, wb * q)
        tables_mu = x.new_empty(2 * len(drawn), c, block, block)
        tables_b = x.new_empty(len(drawn), c, block, block)
        kernel = x.new_zeros(n, c, c, 3, 3)
        cells = image_cells(padded, 4)
        for slot, k in enumerate(drawn):
            model = self.bank.models[k]
            rows = torch.nonzero(weights[:, k] != 0).flatten()
            wk = weights[rows, k].view(-1, 1, 1, 1)
            maps = torch.cat(model.content_maps_of_cells(cells if rows.numel() == n else cells[rows]), dim=1)
            maps = F.pad(maps, (0, wb * q - maps.shape[-1], 0, hb * q - maps.shape[-2]), mode="replicate")
            a, log_c, d = maps.chunk(3, dim=1)
            maps_mu[rows, 2 * slot] = wk * (1 + a)
            maps_mu[rows, 2 * slot + 1] = wk * d
            maps_b[rows, slot] = wk * log_c.exp()
            b_table = tile_phase_table(model.prior.log_b.exp(), block, block)
            tables_mu[2 * slot] = tile_phase_table(model.prior.mu, block, block)
            tables_mu[2 * slot + 1] = b_table
            tables_b[slot] = b_table
            kernel.index_add_(0, rows, wk.view(-1, 1, 1, 1, 1) * model.linear.weight)
        mu = _expand_cells(maps_mu, tables_mu)
        b = _expand_cells(maps_b, tables_b)
        mu, b = mu[..., :h, :w], b[..., :h, :w]
        if not self.config.linear:
            return mu.contiguous(), b.clamp_min(self.config.b_min)
        # The fused linear filter of every image as one grouped convolution.
        # channels_last: this 3-channel convolution runs about twice as fast on CPU (measured).
        centred = (x - 0.5).reshape(1, n * c, h, w).contiguous(memory_format=torch.channels_last)
        linear = F.conv2d(centred, kernel.reshape(n * c, c, 3, 3), padding=1, groups=n)
        mu = mu + linear.view(n, c, h, w).contiguous()  # adding tensors of different layouts is slow
        return mu, b.clamp_min(self.config.b_min)

    def _fused_params_per_model(self, x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu = torch.zeros_like(x)
        b = torch.zeros_like(x)
        weights = weights.to(x.device, x.dtype)
        for k in range(len(self.bank)):
            rows = torch.nonzero(weights[:, k] != 0).flatten()
            if rows.numel() == 0:
                continue
            mu_k, b_k = self.bank.params(k, x[rows])
            if not self.config.linear:
                mu_k = mu_k - self.bank.models[k].linear(x[rows] - 0.5)
            w = weights[rows, k].view(-1, 1, 1, 1)
            mu[rows] += w * mu_k
            b[rows] += w * b_k
        return mu, b.clamp_min(self.config.b_min)

    @torch.no_grad()
    def forward(
        self, x: torch.Tensor, generator: torch.Generator | None = None, weights: torch.Tensor | None = None
    ) -> SimulatorOutput:
        """Pseudo-fakes of real images ``x`` (``N x 3 x H x W`` in [0, 1])."""
        if weights is None:
            weights = self.draw_weights(len(x), generator)
        mu, b = self.fused_params(x, weights)
        if self.config.b_scale != 1.0:
            b = b * self.config.b_scale
        lo, hi = self.config.gamma
        gamma = lo + (hi - lo) * torch.rand(len(x), generator=generator)
        cpu_gen = generator if x.device.type == "cpu" else None
        if self.config.sampler == "copula":
            n = self._sample_copula(mu, b, weights, cpu_gen)
        else:
            n = sample_laplace(mu, b, cpu_gen)
        noise = gamma.to(x.device).view(-1, 1, 1, 1) * n
        # r = x - D(E(x)), so the twin is x minus the imprint (see the module docstring).
        images = torch.round((x - noise).clamp(0, 1) * 255) / 255
        return SimulatorOutput(images=images, noise=noise, weights=weights, gamma=gamma)

    def _sample_copula(
        self, mu: torch.Tensor, b: torch.Tensor, weights: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        """Laplace(mu, b) marginals with the drawn models' spatial and channel correlation mixed by ``|w'|``."""
        mix = weights.abs()
        mix = mix / mix.sum(dim=1, keepdim=True).clamp_min(1e-12)
        g = correlated_normal(self.bank.kernels, mix, tuple(mu.shape), generator).to(mu.device, mu.dtype)
        c = torch.special.ndtr(g).clamp_(1e-7, 1 - 1e-7).sub_(0.5)
        return laplace_quantile_centred(c, mu, b)
