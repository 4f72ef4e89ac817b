import numpy as np
import torch
from PIL import Image

from nirnet.data.degrade import DegradeConfig, DegradeParams
from nirnet.data.pairs import CROP_MARGIN, PairConfig, PairDataset
from nirnet.imprint.bank import ImprintBank
from nirnet.imprint.fusion import ImprintSimulator, SimulatorConfig
from nirnet.testing import synthetic_photo


class RecordingSimulator(torch.nn.Module):
    """The shipped simulator, remembering the size of every region it was asked to stamp."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = ImprintSimulator(ImprintBank.load(), SimulatorConfig(models_per_sample=2))
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x, generator=None):
        self.sizes.append(tuple(x.shape[-2:]))
        return self.inner(x, generator)


def _photos(tmp_path, n=3):
    paths = []
    for i in range(n):
        path = tmp_path / f"{i}.png"
        Image.fromarray(synthetic_photo(400, 420, seed=i)).save(path)
        paths.append(path)
    return paths


def test_region_covers_the_crop_at_every_resize_scale():
    cfg = PairConfig(crop_size=64, degrade=DegradeConfig(resize_prob=1.0, resize_scale=(0.5, 1.5), crop_size=64))
    assert cfg.region_for(DegradeParams()) == 64 + CROP_MARGIN
    for scale in (0.5, 0.77, 1.0, 1.3, 1.5):
        region = cfg.region_for(DegradeParams(resize_scale=scale))
        assert round(region * scale) >= 64 + CROP_MARGIN  # after the resize, the crop and its margin fit
    assert cfg.region == cfg.region_for(DegradeParams(resize_scale=0.5)) == 144


def test_simulator_pairs_are_aligned_deterministic_and_only_as_large_as_needed(tmp_path):
    degrade = DegradeConfig(jpeg_prob=0.5, resize_prob=0.5, resize_scale=(0.75, 1.25), crop_size=64)
    simulator = RecordingSimulator()
    data = PairDataset(_photos(tmp_path), PairConfig(crop_size=64, p_simulator=1.0, degrade=degrade), simulator)
    keys = [(step, slot) for step in range(4) for slot in range(4)]
    items = [data[key] for key in keys]
    for pair, kind in items:
        assert pair.shape == (2, 3, 64, 64) and pair.dtype == torch.uint8
        assert PairDataset.KINDS[kind] == "simulator"
        assert not torch.equal(pair[0], pair[1])  # the fake carries an imprint
    again, _ = data[keys[5]]
    assert torch.equal(again, items[5][0])
    # Without a resize only the crop plus its margin is simulated, never the worst-case region.
    assert (64 + CROP_MARGIN, 64 + CROP_MARGIN) in simulator.sizes
    assert max(h for h, _ in simulator.sizes) <= data.config.region
    assert np.mean([h * w for h, w in simulator.sizes]) < data.config.region**2
