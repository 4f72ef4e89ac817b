import json
from pathlib import Path

from PIL import Image

from nirnet.data.datasets import read_dataset
from nirnet.data.split import is_validation, split_paths, validation_csv
from nirnet.engine.config import load_config
from nirnet.engine.train import train, training_images
from nirnet.testing import synthetic_photo


def test_split_is_by_file_name_and_near_the_asked_share():
    names = [Path(f"folder{i % 3}") / f"img_{i}.jpg" for i in range(4000)]
    held = [p for p in names if is_validation(p, 0.25)]
    assert 0.22 < len(held) / len(names) < 0.28
    # the same name in another folder falls on the same side; 0 holds nothing out
    assert is_validation(Path("a") / held[0].name, 0.25) and is_validation(Path("b") / held[0].name, 0.25)
    assert not any(is_validation(p, 0.0) for p in names)
    # a larger share keeps every image of a smaller one held out (nested splits)
    assert all(is_validation(p, 0.5) for p in held)
    train_part, held_part = split_paths(names + names[:10], 0.25)
    assert len(train_part) + len(held_part) == len(names) + 10
    assert not set(train_part) & set(held_part)


def test_validation_manifest_reads_back_as_a_dataset(tmp_path):
    real = [tmp_path / "r" / "a.jpg", tmp_path / "r" / "b.jpg", tmp_path / "r" / "a.jpg"]
    fake = [tmp_path / "f" / "c.png"]
    for path in real + fake:
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (8, 8)).save(path)
    (tmp_path / "run" / "validation").mkdir(parents=True)
    manifest = tmp_path / "run" / "validation" / "manifest.csv"
    manifest.write_text(validation_csv(real, fake, manifest.parent))
    samples = read_dataset(manifest)
    assert sorted((s.path.resolve().name, s.label) for s in samples) == [("a.jpg", 0), ("b.jpg", 0), ("c.png", 1)]
    assert all(s.path.is_file() for s in samples)


def test_training_leaves_out_its_validation_images(tmp_path):
    for cls, label in (("real", 0), ("fake", 1)):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(synthetic_photo(80, 80, seed=10 * label + i)).save(
                tmp_path / "data" / cls / f"{cls}{i}.png"
            )
    out = tmp_path / "run"
    config = load_config(
        None,
        [
            "model=test_nirnet",
            f"data.real=[{tmp_path / 'data' / 'real'}]",
            f"data.generated={tmp_path / 'data'}",
            "data.pairs.p_generated=1.0",
            "data.pairs.p_simulator=0.0",
            "data.validation=0.3",
            "model_overrides.input_scale=1.5",
            "optim.steps=2",
            "optim.batch_pairs=2",
            "optim.warmup=1",
            f"run.out_dir={out}",
            "run.workers=0",
        ],
    )
    real, fake, real_held, fake_held = training_images(config)
    assert real_held and fake_held and real and fake
    assert not {p.name for p in real} & {p.name for p in real_held}
    final = train(config, show_progress=False)
    held = read_dataset(out / "validation" / "manifest.csv")
    assert sorted(s.path.resolve() for s in held) == sorted(p.resolve() for p in real_held + fake_held)
    assert load_config(out / "config.yaml").data.validation == 0.3
    assert json.loads((final / "config.json").read_text())["preprocess"]["input_scale"] == 1.5
