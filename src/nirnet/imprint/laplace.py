"""Per-pixel Laplace models of an autoencoder's residual ``r = x - D(E(x))``.

* :class:`ClosedFormLaplace`: per channel and per decoder-grid phase ``(row mod s, col mod s)``:
  ``mu = median(r)``, ``b = mean |r - mu|`` (the maximum-likelihood Laplace fit).
* :class:`LearnedLaplace`: a small conv net ``g(x, phase) -> (mu, log b)`` per pixel and channel, trained with the
  Laplace negative log-likelihood ``log(2b) + |r - mu| / b``. It predicts a *correction* on top of the closed-form
  tables, so it starts at the closed-form fit and can only learn how the imprint depends on content.
* :class:`ClosedFormGaussian`: the same tables with mean / standard deviation, only to compare likelihoods.

All modules take images ``x`` in [0, 1] (``N x 3 x H x W``) and return ``(mu, log_scale)`` maps of that shape.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def phase_channels(height: int, width: int, stride: int, device: torch.device | None = None) -> torch.Tensor:
    """``4 x H x W``: sin/cos of ``2 pi (row mod s) / s`` and of ``2 pi (col mod s) / s``."""
    rows = torch.arange(height, device=device, dtype=torch.float32).remainder(stride) * (2 * math.pi / stride)
    cols = torch.arange(width, device=device, dtype=torch.float32).remainder(stride) * (2 * math.pi / stride)
    r = rows[:, None].expand(height, width)
    c = cols[None, :].expand(height, width)
    return torch.stack([r.sin(), r.cos(), c.sin(), c.cos()])


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


class LearnedLaplace(nn.Module):
    """``g(x, phase) -> (mu, log b)``: closed-form per-phase tables plus a content-dependent correction."""

    def __init__(self, stride: int, hidden: int = 16) -> None:
        super().__init__()
        self.stride = stride
        self.hidden = hidden
        self.prior = ClosedFormLaplace(stride)
        self.net = nn.Sequential(
            nn.Conv2d(3 + 4, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2),
            nn.ReLU(),
            nn.Conv2d(hidden, 6, 3, padding=1),
        )
        # Start exactly at the prior: the correction is zero until training moves it.
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = x.shape
        phase = phase_channels(h, w, self.stride, x.device).expand(n, -1, -1, -1)
        delta_mu, delta_log_b = self.net(torch.cat([x - 0.5, phase], dim=1)).chunk(2, dim=1)
        mu, log_b = self.prior(x)
        # Residuals are small (~1e-2); the correction of mu is scaled by the prior's scale to stay in range.
        return mu + delta_mu * log_b.exp(), (log_b + delta_log_b).clamp_min(math.log(MIN_SCALE))


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
    optimizer = torch.optim.Adam(model.net.parameters(), lr=lr)
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
    """Draw ``Laplace(mu, b)`` by inverse CDF: ``mu - b sign(u) log(1 - 2|u|)``, ``u ~ U(-1/2, 1/2)``."""
    u = torch.rand(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype) - 0.5
    return mu - b * u.sign() * torch.log1p(-2 * u.abs()).clamp_min(-50)


__all__ = [
    "ClosedFormGaussian",
    "ClosedFormLaplace",
    "LearnedLaplace",
    "evaluate_nll",
    "fit_learned_laplace",
    "gaussian_nll",
    "laplace_nll",
    "phase_channels",
    "sample_laplace",
    "tile_phase_table",
]
