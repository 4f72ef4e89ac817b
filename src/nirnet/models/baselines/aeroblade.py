"""Training-free AEROBLADE-style scorer (Ricker et al., CVPR 2024), written from the paper.

An image produced by a latent diffusion model is reconstructed by that model's autoencoder with a smaller error
than a real photo. The score is the reconstruction distance minimised over the autoencoders of the registry;
a small distance means "generated". The paper measures the distance with LPIPS (VGG features); VGG weights cannot
be downloaded here, so this uses the mean squared error in pixel space on a centre crop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from ...data.degrade import center_crop
from ...data.tensors import to_float_tensor
from ...imprint.autoencoders import Reconstructor, create_autoencoder


class AerobladeScorer:
    def __init__(self, autoencoders: Sequence[str | Reconstructor], crop: int = 256) -> None:
        self.autoencoders = [create_autoencoder(a) if isinstance(a, str) else a for a in autoencoders]
        self.crop = crop
        self.center, self.scale = 0.0, 1.0  # logistic mapping of -log(distance); see calibrate()

    @torch.inference_mode()
    def distances(self, images: Sequence[Image.Image]) -> np.ndarray:
        """``min_k MSE(x, AE_k(x))`` per image (on a centre crop of at most ``crop`` px)."""
        out = []
        for img in images:
            x = to_float_tensor(center_crop(img, self.crop))
            out.append(min(float(((ae.reconstruct(x) - x) ** 2).mean()) for ae in self.autoencoders))
        return np.asarray(out)

    def calibrate(self, real_images: Sequence[Image.Image]) -> None:
        """Centre the probability mapping on real photos: a real photo's typical distance maps to about 0.27."""
        log_d = -np.log(self.distances(real_images) + 1e-12)
        self.center, self.scale = float(np.median(log_d) + np.std(log_d)), float(np.std(log_d) + 1e-6)

    def __call__(self, images: Sequence[Image.Image]) -> list[float]:
        """Probability-like score that each image is generated (monotone in the reconstruction distance)."""
        log_d = -np.log(self.distances(images) + 1e-12)
        return list(1 / (1 + np.exp(-(log_d - self.center) / self.scale)))
