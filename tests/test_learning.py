"""Behaviour, not plumbing: a few training steps on a fixed toy set teach a model to rank a simulated twin above
its photo, on photos it never saw."""

import math

import torch
from PIL import Image

from nirnet.engine.config import load_config
from nirnet.engine.train import train
from nirnet.imprint.bank import BankEntry, ImprintBank
from nirnet.imprint.fusion import ImprintSimulator, SimulatorConfig
from nirnet.imprint.laplace import LearnedLaplace
from nirnet.models import create_model
from nirnet.testing import synthetic_photo


def _toy_bank() -> ImprintBank:
    """Three sources that each leave a 4x4-periodic pattern (a few 8-bit levels), like a decoder's upsampling grid."""
    models = []
    for k in range(3):
        model = LearnedLaplace(4)
        phase = torch.arange(4)
        pattern = torch.cos(math.pi * (phase[:, None] + phase[None, :] + k) / 2)  # checkerboard-like, shifted per k
        model.prior.mu.copy_(0.03 * pattern.expand(3, 4, 4))
        model.prior.log_b.fill_(math.log(0.004))
        models.append(model)
    return ImprintBank([BankEntry(f"toy{k}", 4) for k in range(3)], models)


def test_a_few_steps_rank_simulated_twins_above_their_photos(tmp_path):
    (tmp_path / "real").mkdir()
    for i in range(8):
        Image.fromarray(synthetic_photo(96, 96, seed=i)).save(tmp_path / "real" / f"{i}.png")
    bank = _toy_bank()
    bank.save(tmp_path / "bank.safetensors")
    overrides = [
        "model=test_nirnet",
        f"data.real=[{tmp_path / 'real'}]",
        f"data.bank={tmp_path / 'bank.safetensors'}",
        "data.pairs.p_simulator=1.0",
        "data.pairs.p_generated=0.0",
        "data.pairs.degrade.jpeg_prob=0",
        "data.pairs.degrade.blur_prob=0",
        "data.pairs.degrade.resize_prob=0",
        "data.pairs.match_sharpness=false",
        "model_overrides.crop_size=96",  # whole 96 px photos: the most signal per step
        "model_overrides.lambda_da=0",
        "model_overrides.semantic=none",  # the noise and frequency branches are what must find the pattern
        "optim.steps=25",
        "optim.batch_pairs=4",
        "optim.warmup=2",
        f"run.out_dir={tmp_path / 'run'}",
        "run.workers=0",
        "run.checkpoint_every=1000",
    ]
    final = train(load_config(None, overrides), show_progress=False)

    # Photos the model never saw, and their twins from the same simulator.
    photos = torch.stack(
        [torch.from_numpy(synthetic_photo(64, 64, seed=100 + i)).permute(2, 0, 1).float() / 255 for i in range(12)]
    )
    generator = torch.Generator().manual_seed(0)
    twins = ImprintSimulator(bank, SimulatorConfig(gamma=(0.6, 0.6)))(photos, generator).images

    def ranked(model) -> float:
        with torch.no_grad():
            logits = model.eval()(torch.cat([photos, twins]))
        return float((logits[len(photos) :] > logits[: len(photos)]).float().mean())

    torch.manual_seed(0)
    untrained = ranked(create_model("test_nirnet", crop_size=64, lambda_da=0, semantic="none"))
    trained = ranked(create_model("test_nirnet", pretrained=final))
    print(f"twin ranked above its photo: trained {trained:.2f}, untrained {untrained:.2f}")
    assert trained >= 0.9, (trained, untrained)
    assert trained > untrained
