import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from nirnet.data.transforms import PreprocessConfig
from nirnet.engine.config import load_config
from nirnet.engine.train import train
from nirnet.imprint.bank import BankEntry, ImprintBank
from nirnet.imprint.laplace import LearnedLaplace
from nirnet.models import NIRNetConfig, create_model, get_config, list_models
from nirnet.models.registry import model_entry
from nirnet.testing import synthetic_photo


@pytest.fixture(scope="module")
def train_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    (root / "real").mkdir()
    for i in range(6):
        Image.fromarray(synthetic_photo(90, 110, seed=i)).save(root / "real" / f"{i}.jpg", quality=92)
    bank = ImprintBank([BankEntry(f"toy{i}", 4) for i in range(3)], [LearnedLaplace(4) for _ in range(3)])
    for model in bank.models:
        model.prior.mu.normal_(0, 0.01)
    bank.save(root / "bank.safetensors")
    return root


def _overrides(env: Path, out: Path, model: str = "test_nirnet", steps: int = 3, extra=()) -> list[str]:
    """The dotted overrides of a tiny CPU run on the synthetic photos and toy bank of ``train_env``."""
    return [
        f"model={model}",
        f"data.real=[{env / 'real'}]",
        f"data.bank={env / 'bank.safetensors'}",
        "data.pairs.degrade.resize_prob=0.5",
        f"optim.steps={steps}",
        "optim.batch_pairs=2",
        "optim.warmup=1",
        f"run.out_dir={out}",
        "run.workers=0",
        "run.checkpoint_every=2",
        "run.log_every=1",
        *extra,
    ]


def _config(env: Path, out: Path, model: str = "test_nirnet", steps: int = 3, extra=()):
    return load_config(None, _overrides(env, out, model, steps, extra))


def test_config_overrides_and_errors(tmp_path):
    cfg = load_config(
        None, ["optim.lr=0.5", "data.pairs.degrade.jpeg_quality=[50, 60]", "model_overrides.crop_size=64"]
    )
    assert cfg.optim.lr == 0.5 and cfg.data.pairs.degrade.jpeg_quality == (50, 60)
    assert cfg.model_overrides == {"crop_size": 64}
    with pytest.raises(ValueError, match="unknown key"):
        load_config(None, ["optim.nope=1"])


# Frozen-feature probes are fitted in closed form, not by steps (tests/test_probe.py fits one through `nirnet train`).
STEP_TRAINED = [m for m in list_models() if m != "nirnet_base" and model_entry(m).architecture.arch != "frozen_probe"]


@pytest.mark.parametrize("model", STEP_TRAINED)
def test_smoke_training_every_model(train_env, tmp_path, model):
    overrides = ["model_overrides.crop_size=64"]
    if isinstance(get_config(model), NIRNetConfig):  # baselines have no semantic branch and no L_DA
        overrides += [
            "model_overrides.semantic_size=64",
            "model_overrides.da_crop=32",
            "model_overrides.da_encoder=ours:nearest_s8",
            "model_overrides.da_latent_channels=8",
        ]
    config = _config(train_env, tmp_path, model, extra=overrides)
    torch.manual_seed(config.run.seed)  # the same initial weights as train() draws
    initial = create_model(config.model, **config.model_overrides).trainable_state_dict()
    final = train(config, show_progress=False)
    assert (final / "model.safetensors").is_file() and (final / "config.json").is_file()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 3 and all(np.isfinite(json.loads(l)["loss"]) for l in lines)  # noqa: E741
    assert (tmp_path / "config.yaml").is_file()
    # The optimiser really trained the model: the weights that get gradients moved (BatchNorm buffers and the
    # untouched L_DA head of models without L_DA excepted).
    trained = load_file(str(final / "model.safetensors"))
    weights = [k for k, v in initial.items() if v.is_floating_point() and "running_" not in k]
    moved = [k for k in weights if not torch.equal(initial[k], trained[k])]
    assert len(moved) >= 0.7 * len(weights), f"only {len(moved)} of {len(weights)} weight tensors changed"


def test_smoke_training_base_when_clip_installed(train_env, tmp_path):
    pytest.importorskip("open_clip", reason="open_clip extra not installed")
    overrides = [
        "model_overrides.crop_size=64",
        "model_overrides.semantic=none",
        "model_overrides.noise_depth=4",
        "model_overrides.da_crop=32",
        "model_overrides.da_encoder=ours:nearest_s8",
        "model_overrides.da_latent_channels=8",
        "optim.steps=2",
    ]
    final = train(_config(train_env, tmp_path, "nirnet_base", extra=overrides), show_progress=False)
    assert (final / "model.safetensors").is_file()


def test_resume_equals_uninterrupted(train_env, tmp_path):
    full = train(_config(train_env, tmp_path / "full", steps=4), show_progress=False)
    part_cfg = _config(train_env, tmp_path / "part", steps=2)
    said: list[str] = []
    train(part_cfg, resume=True, show_progress=False, on_message=said.append)  # nothing to resume yet
    resumed = train(
        _config(train_env, tmp_path / "part", steps=4), resume=True, show_progress=False, on_message=said.append
    )
    assert said[0].startswith("no checkpoint in") and said[1].startswith("resumed from step 2")
    a, b = load_file(str(full / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_resume_logs_each_step_once(tmp_path):
    """A run killed after logging steps beyond its last complete checkpoint runs those steps again on resume:
    metrics.jsonl keeps one line per step (and loses a line torn by the kill)."""
    from nirnet.engine.logging import MetricLogger

    lines = [json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in range(1, 5)]
    (tmp_path / "metrics.jsonl").write_text("".join(lines) + '{"step": 5, "lo')
    logger = MetricLogger(tmp_path, enabled=True, show_progress=False, total=6, start=2)  # resumed at step 2
    for step in (3, 4):
        logger.step(step, {"loss": 0.5}, log=True)
    logger.close()
    logged = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in logged] == [1, 2, 3, 4]
    assert logged[:2] == [line.strip() for line in lines[:2]]


SCRIPT = """
import sys
from nirnet.data.transforms import PreprocessConfig
from nirnet.engine.config import load_config
from nirnet.engine.train import train
cfg = load_config(None, sys.argv[2:])
train(cfg, resume=sys.argv[1] == "resume", show_progress=False)
"""


def test_resume_after_kill_9(train_env, tmp_path):
    """Kill -9 a training process after its first checkpoint, resume, and compare with an uninterrupted run."""

    def args(out, steps):
        return _overrides(train_env, out, steps=steps, extra=["run.threads=1"])

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([sys.executable, "-c", SCRIPT, "fresh", *args(tmp_path / "ref", 8)], check=True, env=env)
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, "fresh", *args(tmp_path / "crash", 8)], env=env)
    deadline = time.time() + 120
    while time.time() < deadline and not (tmp_path / "crash" / "latest.json").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "crash" / "latest.json").exists()
    assert not (tmp_path / "crash" / "final").exists(), "the run finished before it could be killed"
    subprocess.run([sys.executable, "-c", SCRIPT, "resume", *args(tmp_path / "crash", 8)], check=True, env=env)
    a = load_file(str(tmp_path / "ref" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "crash" / "final" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def _torchrun(script: Path, mode: str, args: list[str], port: int) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    result = subprocess.run([*cmd, str(script), mode, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def test_ddp_gloo_two_processes(train_env, tmp_path):
    """torchrun with 2 CPU processes: identical weights on both ranks, rank 0 alone writes, and a run resumed
    under torchrun ends bit-identical to an uninterrupted one."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    extra = ["optim.batch_pairs=4", "run.threads=1", "run.device=cpu"]
    _torchrun(script, "fresh", _overrides(train_env, tmp_path / "ddp", steps=4, extra=extra), 29533)
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    first, second = summary["rank_weight_checksums"]
    assert first == second
    assert len((tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()) == 4  # rank 0 logs alone
    _torchrun(script, "fresh", _overrides(train_env, tmp_path / "part", steps=2, extra=extra), 29534)
    _torchrun(script, "resume", _overrides(train_env, tmp_path / "part", steps=4, extra=extra), 29535)
    a = load_file(str(tmp_path / "ddp" / "final" / "model.safetensors"))
    b = load_file(str(tmp_path / "part" / "final" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_ranks_split_every_global_batch():
    from nirnet.data.pairs import StepSampler

    ranks = [set(StepSampler(3, 10, 6, rank, 2)) for rank in range(2)]
    assert not ranks[0] & ranks[1]
    assert ranks[0] | ranks[1] == set(StepSampler(3, 10, 6))


def test_shipped_configs_parse():
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
    assert len(configs) >= 3
    for path in configs:
        cfg = load_config(path)
        assert cfg.optim.steps > 0 and cfg.data.real


def test_difference_aware_loss_sees_only_twin_pairs():
    """A generated image is not its photo's twin: L_DA must skip those pairs (their latent difference is content)."""
    from nirnet.engine.train import TrainStep
    from nirnet.models.losses import DifferenceAwareLoss

    torch.manual_seed(0)
    model = create_model("test_nirnet", semantic="none").train()
    encoder = torch.nn.Sequential(torch.nn.Conv2d(3, model.config.da_latent_channels, 8, 8))
    encoder.encode = encoder.forward
    da = DifferenceAwareLoss(encoder, model.config.da_grid, model.config.da_crop, pairs=8)
    step = TrainStep(model, da)
    real = torch.rand(4, 3, 64, 64)
    fake = torch.rand(4, 3, 64, 64)  # unrelated images, as a generated "fake" of a pair is
    none = torch.zeros(4, dtype=torch.bool)
    _, l_da = step(real, fake, torch.Generator().manual_seed(1), none)
    assert float(l_da) == 0.0
    l_da.backward()  # still connected to the head (DDP reduces the same parameters on every rank)
    assert all(float(p.grad.abs().sum()) == 0.0 for p in model.da_head.parameters())
    twins = torch.tensor([True, False, True, False])
    scale = model.da_scale.clone()  # L_DA's running target scale moves with each call: start both from the same
    _, masked = step(real, fake, torch.Generator().manual_seed(1), twins)
    model.da_scale.copy_(scale)
    direct = da(model, real[twins], fake[twins], torch.Generator().manual_seed(1))
    torch.testing.assert_close(masked, direct)


def test_training_crops_follow_the_model_crop_size_and_input_scale(train_env, tmp_path):
    from nirnet.engine.train import build_dataset

    config = _config(train_env, tmp_path, extra=["data.pairs.degrade.resize_prob=0.0"])
    assert config.data.pairs.crop_size is None  # no copy: the model's crop size is the training crop size
    pair, _ = build_dataset(config)[(0, 0)]
    assert pair.shape == (2, 3, 64, 64)  # the config's model_overrides.crop_size
    # at input scale 2 the 64 px crop covers a 32 px patch: neighbouring pixels are far more alike
    native = build_dataset(config, PreprocessConfig(crop_size=64))[(1, 0)][0].float()
    doubled = build_dataset(config, PreprocessConfig(crop_size=64, input_scale=2.0))[(1, 0)][0].float()
    assert doubled.diff(dim=-1).abs().mean() < 0.7 * native.diff(dim=-1).abs().mean()
    # the model's input scale is the training scale unless data.pairs.input_scale says otherwise
    scaled = _config(train_env, tmp_path, extra=["data.pairs.degrade.resize_prob=0.0", "model_overrides.input_scale=2"])
    assert torch.equal(build_dataset(scaled)[(1, 0)][0].float(), doubled)
    held = _config(train_env, tmp_path, extra=["data.pairs.degrade.resize_prob=0.0", "model_overrides.input_scale=2",
                                                "data.pairs.input_scale=1.0"])  # fmt: skip
    assert torch.equal(build_dataset(held)[(1, 0)][0].float(), native)


def test_a_training_crop_size_that_contradicts_the_model_is_a_config_error(train_env, tmp_path):
    from nirnet.engine.train import SetupError, check_inputs

    check_inputs(_config(train_env, tmp_path, extra=["data.pairs.crop_size=64"]))  # restating the model's is fine
    with pytest.raises(SetupError, match="data.pairs.crop_size is 128 but the model reads 64 px crops"):
        check_inputs(_config(train_env, tmp_path, extra=["data.pairs.crop_size=128"]))
