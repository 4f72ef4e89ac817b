"""Per-pixel Laplace models of an autoencoder's residual ``r = x - D(E(x))``.

* :class:`ClosedFormLaplace`: per channel and per decoder-grid phase ``(row mod s, col mod s)``:
  ``mu = median(r)``, ``b = mean |r - mu|`` (the maximum-likelihood Laplace fit).
* :class:`LearnedLaplace`: ``g(x, phase) -> (mu, log b)`` per pixel and channel, trained with the Laplace negative
  log-likelihood ``log(2b) + |r - mu| / b``. The phase enters through per-phase tables (a lookup is the most
  general function of ``(row mod s, col mod s)``), which small conv nets modulate by the image content; it starts
  at the closed-form fit and learns how the imprint depends on content.
* :class:`ClosedFormGaussian`: the same tables with mean / standard deviation, only to compare likelihoods.

All modules take images ``x`` in [0, 1] (``N x 3 x H x W``) and return ``(mu, log_scale)`` maps of that shape.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def tile_phase_table(table: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Tile a ``C x s x s`` per-phase table to ``C x H x W`` (phase measured from the top-left corner)."""
    stride = table.shape[-1]
    reps_h, reps_w = -(-height // stride), -(-width // stride)
    return table.repeat(1, reps_h, reps_w)[:, :height, :width]


def _phase_view(r: torch.Tensor, stride: int) -> torch.Tensor:
    """``N x C x H x W`` (sides multiples of ``stride``) -> ``C x s x s x M`` samples per channel and phase."""
    n, c, h, w = r.shape
    r = r[..., : h - h % stride, : w - w % stride]
    r = r.reshape(n, c, h // stride, stride, w // stride, stride)
    return r.permute(1, 3, 5, 0, 2, 4).reshape(c, stride, stride, -1)


def laplace_nll(r: torch.Tensor, mu: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """Mean Laplace negative log-likelihood (nats per value)."""
    return (math.log(2) + log_b + (r - mu).abs() * torch.exp(-log_b)).mean()


def gaussian_nll(r: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Mean Gaussian negative log-likelihood (nats per value)."""
    return (0.5 * math.log(2 * math.pi) + log_std + 0.5 * ((r - mean) * torch.exp(-log_std)).pow(2)).mean()


MIN_SCALE = 1e-4  # residuals are differences of 8-bit images; a smaller scale is numerical noise


class ClosedFormLaplace(nn.Module):
    def __init__(self, stride: int, channels: int = 3) -> None:
        super().__init__()
        self.stride = stride
        self.register_buffer("mu", torch.zeros(channels, stride, stride))
        self.register_buffer("log_b", torch.full((channels, stride, stride), math.log(0.01)))

    @classmethod
    def fit(cls, residuals: torch.Tensor, stride: int) -> ClosedFormLaplace:
        samples = _phase_view(residuals.float(), stride)
        mu = samples.median(dim=-1).values
        b = (samples - mu[..., None]).abs().mean(dim=-1).clamp_min(MIN_SCALE)
        model = cls(stride, residuals.shape[1])
        model.mu.copy_(mu)
        model.log_b.copy_(b.log())
        return model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        mu = tile_phase_table(self.mu, h, w).expand(n, -1, -1, -1)
        log_b = tile_phase_table(self.log_b, h, w).expand(n, -1, -1, -1)
        return mu, log_b


class ClosedFormGaussian(ClosedFormLaplace):
    """Per-phase mean and log standard deviation (stored in ``mu`` / ``log_b``), for comparison only."""

    @classmethod
    def fit(cls, residuals: torch.Tensor, stride: int) -> ClosedFormGaussian:
        samples = _phase_view(residuals.float(), stride)
        model = cls(stride, residuals.shape[1])
        model.mu.copy_(samples.mean(dim=-1))
        model.log_b.copy_(samples.std(dim=-1).clamp_min(MIN_SCALE).log())
        return model


def image_cells(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centred image as ``size x size`` cells stacked in channels (the content nets' input): the same values
    and channel order as ``pixel_unshuffle(x - 0.5, size)``, in channels-last memory order."""
    n, c, h, w = x.shape
    # One copy straight into channels-last order (the narrow convolutions that read this run about twice as fast
    # on CPU in that layout, measured), then the centring in place.
    cells = x.view(n, c, h // size, size, w // size, size).permute(0, 2, 4, 1, 3, 5).contiguous()
    return cells.view(n, h // size, w // size, c * size * size).permute(0, 3, 1, 2).sub_(0.5)


class LearnedLaplace(nn.Module):
    """``g(x, phase) -> (mu, log b)``: the closed-form per-phase tables, modulated by the image content.

    ``mu = mu_phase * (1 + a(x)) + d(x) * b_phase + L(x)`` and ``log b = log b_phase + c(x)``, where

    * ``mu_phase``, ``b_phase`` are the closed-form tables indexed by the phase ``(row mod s, col mod s)``;
    * ``L`` is a linear 3x3 filter of the image at full resolution: an autoencoder that smooths leaves a residual
      that is a high-pass of the image, which a linear filter captures;
    * ``a``, ``c``, ``d`` come from a small conv net on a 4x space-to-depth view of the image (local brightness,
      colour and texture decide how strong the imprint is), upsampled back to full resolution.

    Running the nonlinear part at 1/4 resolution keeps the bank cheap enough to sample inside a data loader. All
    content terms start at zero, so an untrained model equals the closed-form fit.
    """

    def __init__(self, stride: int, hidden: int = 16, low_res: int = 4) -> None:
        super().__init__()
        self.stride = stride
        self.hidden = hidden
        self.low_res = low_res
        self.prior = ClosedFormLaplace(stride)
        self.linear = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.content = nn.Sequential(
            nn.Conv2d(3 * low_res**2, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, 9, 1),
        )
        for layer in (self.linear, self.content[-1]):
            nn.init.zeros_(layer.weight)
        nn.init.zeros_(self.content[-1].bias)

    def content_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The content terms ``(a, c, d)`` at ``1 / low_res`` resolution, for ``x`` whose sides are multiples of
        ``low_res`` (each value covers one ``low_res x low_res`` block of pixels)."""
        return self.content_maps_of_cells(image_cells(x, self.low_res))

    def content_maps_of_cells(self, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`content_maps` from :func:`image_cells` ``(x, low_res)``, which several models can share."""
        return self.content(cells).chunk(3, dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        f = self.low_res
        centred = (x - 0.5).contiguous(memory_format=torch.channels_last)
        padded = F.pad(x, (0, (-w) % f, 0, (-h) % f), mode="replicate")
        low = torch.cat(self.content_maps(padded), dim=1)
        a, c, d = F.interpolate(low, scale_factor=f, mode="nearest")[..., :h, :w].chunk(3, dim=1)
        mu_phase, logb_phase = self.prior(x)
        b_phase = logb_phase.exp()
        mu = mu_phase * (1 + a) + d * b_phase + self.linear(centred)
        return mu, (logb_phase + c).clamp_min(math.log(MIN_SCALE))


def fit_learned_laplace(
    x: torch.Tensor,
    r: torch.Tensor,
    stride: int,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 3e-3,
    hidden: int = 16,
    seed: int = 0,
) -> LearnedLaplace:
    """Fit :class:`LearnedLaplace` on images ``x`` (float [0, 1]) and their residuals ``r`` (same shape)."""
    torch.manual_seed(seed)
    model = LearnedLaplace(stride, hidden)
    model.prior.load_state_dict(ClosedFormLaplace.fit(r, stride).state_dict())
    trainable = [p for name, p in model.named_parameters() if not name.startswith("prior.")]
    optimizer = torch.optim.Adam(trainable, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        index = torch.randint(len(x), (min(batch_size, len(x)),), generator=generator)
        mu, log_b = model(x[index].float())
        loss = laplace_nll(r[index].float(), mu, log_b)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model.requires_grad_(False).eval()


@torch.no_grad()
def evaluate_nll(model: nn.Module, x: torch.Tensor, r: torch.Tensor, gaussian: bool = False) -> float:
    """Mean NLL of residuals ``r`` given images ``x`` under ``model`` (Laplace unless ``gaussian``)."""
    total, count = 0.0, 0
    for start in range(0, len(x), 32):
        xb, rb = x[start : start + 32].float(), r[start : start + 32].float()
        mu, log_scale = model(xb)
        nll = gaussian_nll(rb, mu, log_scale) if gaussian else laplace_nll(rb, mu, log_scale)
        total += float(nll) * rb.numel()
        count += rb.numel()
    return total / count


def sample_laplace(mu: torch.Tensor, b: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``Laplace(mu, b)`` by inverse CDF (:func:`laplace_quantile_centred`), ``u ~ U(-1/2, 1/2)``.

    Written with in-place ops (this runs per pixel in the data loader). On CPU the uniforms come from numpy's
    PCG64, seeded from ``generator`` (1.2 ms against 1.7-2.1 ms for torch's CPU generator per 272 px RGB image,
    measured).
    """
    if mu.device.type == "cpu":
        seed = int(torch.randint(0, 2**63 - 1, (1,), generator=generator))
        draws = np.random.default_rng(seed).random(tuple(mu.shape), dtype=np.float32)
        u = torch.from_numpy(draws).to(mu.dtype).sub_(0.5)
    else:
        u = torch.rand(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype).sub_(0.5)
    return laplace_quantile_centred(u, mu, b)


def laplace_quantile_centred(c: torch.Tensor, mu: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Inverse CDF of ``Laplace(mu, b)`` at probabilities ``c + 1/2`` (``c`` in (-1/2, 1/2); consumed in place):
    ``mu - b sign(c) log(1 - 2|c|)``, increasing in ``c``. Shared by the independent and the copula sampler."""
    magnitude = c.abs().mul_(-2).log1p_().clamp_min_(-50).neg_()  # -log(1 - 2|c|) >= 0
    return torch.addcmul(mu, b, magnitude.copysign_(c))


__all__ = [
    "ClosedFormGaussian",
    "ClosedFormLaplace",
    "LearnedLaplace",
    "evaluate_nll",
    "fit_learned_laplace",
    "gaussian_nll",
    "image_cells",
    "laplace_nll",
    "laplace_quantile_centred",
    "sample_laplace",
    "tile_phase_table",
]
