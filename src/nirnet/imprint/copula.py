"""Spatially and cross-channel correlated imprint noise: a Gaussian copula with Laplace marginals.

Independent per-pixel Laplace draws carry an imprint's strength and spectrum slope but not its structure: real
residuals are correlated across neighbouring pixels (edges, upsampling kernels) and across colour channels (a
decoder's error is mostly in luminance). The copula keeps each pixel's Laplace marginal from the learned model and
adds that structure:

1. **Fit.** Standardise a residual under its learned Laplace, ``u = F_Laplace((r - mu) / b)``, and map it to a
   Gaussian, ``g = Phi^-1(u)``. Estimate the auto- and cross-channel covariance of ``g`` over lags up to ``radius``,
   turn it into a cross-spectral density (3 x 3 Hermitian matrix per frequency), take each matrix's square root and
   transform back: a ``3 x 3 x k x k`` colouring kernel ``K`` with ``K * e`` (``e`` white Gaussian) having that
   covariance.
2. **Sample.** ``g = K * e``, ``u = Phi(g)``, ``n = F^-1_Laplace(u; mu, b)``. Fusing several models mixes their
   fields: ``g = sum_k sqrt(v_k) K_k * e_k`` with independent ``e_k`` and mixing weights ``v_k >= 0`` summing to 1,
   whose covariance is exactly ``sum_k v_k C_k`` (a valid covariance even when the fused Laplace weights are
   extrapolated outside the simplex).

The correlation is stationary (one kernel per model); the decoder grid's phase enters through the per-pixel
marginals ``mu``, ``b`` as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Lags (in pixels) over which the covariance is estimated; the colouring kernel is ``2 * radius + 1`` wide.
DEFAULT_RADIUS = 4
_FFT_SIZE = 32  # grid on which the spectral square root is taken (>> the kernel, so cropping loses little)
_U_EPS = 1e-4  # keep probabilities away from 0 and 1 before the probit


def laplace_cdf(z: torch.Tensor) -> torch.Tensor:
    """CDF of the standard Laplace distribution (location 0, scale 1)."""
    return 0.5 + 0.5 * torch.sign(z) * (1 - torch.exp(-z.abs()))


def gaussianise(r: torch.Tensor, mu: torch.Tensor, b: torch.Tensor, dequantise: torch.Generator | None = None):
    """``Phi^-1(F_Laplace((r - mu) / b))``: residuals as standard-normal scores under their Laplace model.

    Residuals are differences of 8-bit images, so many values tie; ``dequantise`` (a generator) adds uniform noise
    of one quantisation step so that ties do not pile up at a few scores.
    """
    if dequantise is not None:
        r = r + (torch.rand(r.shape, generator=dequantise) - 0.5) / 255
    u = laplace_cdf((r - mu) / b).clamp(_U_EPS, 1 - _U_EPS)
    return torch.special.ndtri(u)


def lag_covariance(g: torch.Tensor, radius: int = DEFAULT_RADIUS) -> torch.Tensor:
    """``C[i, j, dy, dx] = E[g_i(p) g_j(p + d)]`` for ``|dy|, |dx| <= radius`` over ``N x C x H x W`` fields."""
    n, c, h, w = g.shape
    g = g - g.mean(dim=(0, 2, 3), keepdim=True)
    inner = g[..., radius : h - radius, radius : w - radius]
    size = 2 * radius + 1
    cov = g.new_zeros(c, c, size, size)
    count = inner.shape[0] * inner.shape[2] * inner.shape[3]
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = g[..., radius + dy : h - radius + dy, radius + dx : w - radius + dx]
            cov[:, :, dy + radius, dx + radius] = torch.einsum("nihw,njhw->ij", inner, shifted) / count
    return cov


def colouring_kernel(cov: torch.Tensor) -> torch.Tensor:
    """A ``C x C x k x k`` kernel ``K`` whose output ``K * e`` on white noise has (about) the lag covariance
    ``cov`` (``C x C x k x k``, as from :func:`lag_covariance`), with unit variance per channel.

    The covariance is transformed to a cross-spectral density, each frequency's 3 x 3 matrix is projected onto the
    positive semi-definite cone (a truncated covariance need not be one) and square-rooted, and the inverse
    transform is cropped back to ``k x k``. No taper: a window would shrink the short-lag correlations that matter
    most.
    """
    c, _, size, _ = cov.shape
    radius = size // 2
    cov = cov.double()
    grid = cov.new_zeros(c, c, _FFT_SIZE, _FFT_SIZE)
    grid[..., :size, :size] = cov
    grid = torch.roll(grid, shifts=(-radius, -radius), dims=(-2, -1))  # lag 0 at index 0
    spectrum = torch.fft.fft2(grid).permute(2, 3, 0, 1)  # F x F x C x C, Hermitian per frequency
    spectrum = 0.5 * (spectrum + spectrum.conj().transpose(-1, -2))
    values, vectors = torch.linalg.eigh(spectrum)
    root = vectors @ torch.diag_embed(values.clamp_min(0).sqrt().to(vectors.dtype)) @ vectors.conj().transpose(-1, -2)
    kernel = torch.fft.ifft2(root.permute(2, 3, 0, 1)).real
    kernel = torch.roll(kernel, shifts=(radius, radius), dims=(-2, -1))[..., :size, :size]
    # Cropping drops a little energy; renormalise each output channel to unit variance.
    kernel = kernel / kernel.pow(2).sum(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-12)
    return kernel.float()


def fit_colouring_kernel(
    x: torch.Tensor, r: torch.Tensor, laplace: torch.nn.Module, radius: int = DEFAULT_RADIUS, seed: int = 0
) -> torch.Tensor:
    """Colouring kernel of one autoencoder's residuals ``r`` of images ``x`` under its learned Laplace model."""
    generator = torch.Generator().manual_seed(seed)
    covs, weight = [], 0
    with torch.no_grad():
        for start in range(0, len(x), 32):
            xb, rb = x[start : start + 32].float(), r[start : start + 32].float()
            mu, log_b = laplace(xb)
            g = gaussianise(rb, mu, log_b.exp(), generator)
            covs.append(lag_covariance(g, radius) * len(xb))
            weight += len(xb)
    return colouring_kernel(torch.stack(covs).sum(0) / weight)


def correlated_normal(
    kernels: list[torch.Tensor],
    mix: torch.Tensor,
    shape: tuple[int, int, int, int],
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Standard-normal fields ``N x C x H x W`` with covariance ``sum_k mix[n, k] C_k``.

    ``kernels`` are the colouring kernels of the K models, ``mix`` is ``N x K`` (non-negative, rows sum to 1);
    models with zero weight in every row are skipped.
    """
    n, c, h, w = shape
    out = torch.zeros(shape)
    for k, kernel in enumerate(kernels):
        rows = torch.nonzero(mix[:, k] > 0).flatten()
        if rows.numel() == 0:
            continue
        pad = kernel.shape[-1] // 2
        white = torch.randn(rows.numel(), c, h + 2 * pad, w + 2 * pad, generator=generator)
        field = F.conv2d(white, kernel)
        out[rows] += mix[rows, k].sqrt().view(-1, 1, 1, 1) * field
    return out


def neighbour_correlations(noise: torch.Tensor) -> dict[str, float]:
    """Summary of a noise field's structure: lag-1 horizontal / vertical correlation per channel (mean) and the
    mean correlation between colour channels. Used to compare simulated imprints with real residuals."""
    z = noise - noise.mean(dim=(0, 2, 3), keepdim=True)

    def corr(a: torch.Tensor, b: torch.Tensor) -> float:
        return float((a * b).mean() / (a.pow(2).mean().sqrt() * b.pow(2).mean().sqrt()).clamp_min(1e-12))

    horizontal = corr(z[..., :, 1:], z[..., :, :-1])
    vertical = corr(z[..., 1:, :], z[..., :-1, :])
    pairs = [(0, 1), (0, 2), (1, 2)]
    channel = sum(corr(z[:, i], z[:, j]) for i, j in pairs) / len(pairs)
    return {"lag1_h": horizontal, "lag1_v": vertical, "cross_channel": channel}


__all__ = [
    "DEFAULT_RADIUS",
    "colouring_kernel",
    "correlated_normal",
    "fit_colouring_kernel",
    "gaussianise",
    "lag_covariance",
    "laplace_cdf",
    "neighbour_correlations",
]
