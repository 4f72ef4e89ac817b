"""The training loop: aligned pairs -> NIRNet -> BCE + lambda * L_DA, with resume, DDP, AMP and logging.

Determinism: the data of step ``s`` depends only on ``(seed, s)`` (see :mod:`nirnet.data.pairs`), and every step
reseeds torch with ``(seed, s)`` before its forward pass, so a run resumed from a checkpoint ends with the same
weights as an uninterrupted run with the same seed (on the same hardware and thread count).

Multi-GPU / multi-node: start with ``torchrun --nproc_per_node N -m nirnet.cli.main train ...``; each rank takes
its own slots of every global batch, gradients are averaged by DistributedDataParallel, rank 0 logs and saves.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from .._atomic import atomic_write_text
from .._malloc import keep_freed_memory
from ..data.balance import family_weights, source_weights
from ..data.datasets import read_dataset, real_image_paths
from ..data.families import family_of
from ..data.pairs import PairDataset, StepSampler, collate_pairs
from ..data.recon_cache import read_recon_cache, restrict_recon_cache
from ..data.split import split_paths, validation_csv
from ..data.transforms import PreprocessConfig
from ..imprint.autoencoders import create_autoencoder
from ..imprint.bank import ImprintBank
from ..imprint.fusion import ImprintSimulator
from ..models.losses import DifferenceAwareLoss, bce_with_smoothing
from ..models.registry import create_model, get_config, model_entry
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .config import TrainConfig, dump_config
from .denoise import denoiser_file, init_noise_extractor
from .logging import MetricLogger

GENERATED = PairDataset.KINDS.index("generated")  # kind code of a pair whose fake is a real generated image


class TrainStep(nn.Module):
    """Everything with trainable parameters that one step runs, as one module (so DDP sees all of it)."""

    def __init__(self, model: nn.Module, da_loss: DifferenceAwareLoss | None) -> None:
        super().__init__()
        self.model = model
        self.da_loss = da_loss

    def forward(
        self, real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator | None, twins: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of the batch and L_DA over its twin pairs (``twins``: a boolean mask; a generated image is not its
        photo's twin, and the latent difference between unrelated images would teach the extractor content)."""
        logits = self.model(torch.cat([real, fake]))
        if self.da_loss is None:
            return logits, logits.new_zeros(())
        if not bool(twins.any()):
            # Touch the head so every DDP rank reduces the same parameters, with zero gradient.
            return logits, sum(p.sum() for p in self.model.da_head.parameters()) * 0.0
        return logits, self.da_loss(self.model, real[twins], fake[twins], generator)


class SetupError(ValueError):
    """A training run cannot start as configured (missing data or cache, a folder holding another run, no GPU);
    the message says what to do."""


def _device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise SetupError(f"run.device={spec!r} is not a device; use auto, cpu or cuda") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SetupError(f"run.device={spec} but this machine has no usable CUDA GPU; use run.device=cpu or auto")
    return device


RUN_FILES = ("latest.json", "metrics.jsonl", "summary.json", "final", "leave_family_out.json")


def _previous_run(out_dir: Path) -> list[str]:
    """What of an earlier run ``out_dir`` already holds."""
    if not out_dir.is_dir():
        return []
    return sorted(p.name for p in out_dir.iterdir() if p.name in RUN_FILES or p.name.startswith("step_"))


def prepare_run_folder(out_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new run into a folder that holds another one, unless told to continue it (``resume``) or
    to replace it (``overwrite``: the old checkpoints, metrics and final model are removed first)."""
    import shutil

    previous = _previous_run(out_dir)
    if not previous or resume:
        return
    if not overwrite:
        raise SetupError(
            f"{out_dir} already holds a run ({', '.join(previous[:4])}{', ...' if len(previous) > 4 else ''}); "
            "pass --resume to continue it, --overwrite to start it again, or set run.out_dir=<new folder>"
        )
    for name in previous:
        target = out_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def check_inputs(config: TrainConfig) -> None:
    """Fail before any work when a configured input is missing, naming the command that makes it."""
    d = config.data
    try:  # training crops are the model's: a data.pairs.crop_size that contradicts it is refused here
        d.pairs.read(get_config(config.model, **config.model_overrides).preprocess)
    except ValueError as exc:
        raise SetupError(f"config: {exc}") from None
    if not d.real:
        raise SetupError("data.real is empty: name folders of real photos (see configs/nirnet_tiny_cpu.yaml)")
    for folder in d.real:
        if not Path(folder).exists():
            raise SetupError(f"data.real: {folder} does not exist")
    if not 0 <= d.validation < 1:
        raise SetupError(f"data.validation must be in [0, 1) (a share of the images), got {d.validation}")
    for folder in generated_sources(d):
        if not Path(folder).exists():
            raise SetupError(f"data.generated: {folder} does not exist")
    if d.recon_cache and not (Path(d.recon_cache) / "index.json").is_file():
        raise SetupError(
            f"data.recon_cache: no autoencoder-twin cache at {d.recon_cache}; build it first with\n"
            f"  nirnet imprint reconstruct {d.real[0]} --out {d.recon_cache} --limit 240\n"
            "or train without autoencoder twins: data.recon_cache=null"
        )
    if d.bank not in (None, "none") and not Path(d.bank).is_file():
        raise SetupError(f"data.bank: no imprint bank at {d.bank} (null = the shipped bank, none = no simulator)")
    init = config.init.noise_extractor
    if init and not denoiser_file(init).is_file():
        raise SetupError(
            f"init.noise_extractor: no pretrained denoiser at {init}; make one with\n"
            f"  nirnet pretrain-denoiser {d.real[0]} --out {init}"
        )


def _init_distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), world


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    o = config.optim
    if step < o.warmup:
        return o.lr * (step + 1) / o.warmup
    progress = (step - o.warmup) / max(1, o.steps - o.warmup)
    return o.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers share the machine's cores with the training process
    keep_freed_memory()  # the simulator reallocates the same buffers for every pair


def generated_sources(d) -> list[str]:
    """``data.generated`` as a list (it may name one dataset or several)."""
    if not d.generated:
        return []
    return [d.generated] if isinstance(d.generated, str) else list(d.generated)


def generated_samples(config: TrainConfig) -> list:
    """The label-1 samples of every ``data.generated`` dataset, without the families in ``data.exclude_families``."""
    d = config.data
    excluded = set(d.exclude_families)
    samples = [s for source in generated_sources(d) for s in read_dataset(source) if s.label == 1]
    return [s for s in samples if family_of(s.subset) not in excluded]


def training_images(
    config: TrainConfig, generated: list | None = None
) -> tuple[list[Path], list[Path], list[Path], list[Path]]:
    """(real, generated) training paths, then (real, generated) validation paths (``data.validation``);
    ``generated``: the :func:`generated_samples`, when the caller has read them already."""
    d = config.data
    generated = generated_samples(config) if generated is None else generated
    real_train, real_held = split_paths(real_image_paths(d.real, d.limit), d.validation)
    gen_train, gen_held = split_paths([s.path for s in generated], d.validation)
    return real_train, gen_train, real_held, gen_held


def sampling_weights(config: TrainConfig, real: list[Path], generated: list[Path], samples: list):
    """(real weights, generated weights) for ``data.balance`` (``samples``: the generated datasets' samples, for
    each path's generator); (None, None) draws uniformly."""
    d = config.data
    if not d.balance:
        return None, None
    generator_of = {s.path: s.subset for s in samples}
    gen_weights = family_weights([generator_of[p] for p in generated], d.min_family_images) if generated else None
    return source_weights(real), gen_weights


def write_validation_manifest(config: TrainConfig, out_dir: Path) -> None:
    """``<out_dir>/validation/manifest.csv``: the images this run does not train on (when ``data.validation``)."""
    if config.data.validation <= 0:
        return
    _, _, real_held, gen_held = training_images(config)
    folder = out_dir / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / "manifest.csv", validation_csv(real_held, gen_held, folder))


def build_dataset(config: TrainConfig, preprocess: PreprocessConfig | None = None) -> PairDataset:
    """The training pairs of ``config``, read the way the model reads images: ``preprocess`` (default: that of
    ``config.model`` with its overrides); see :meth:`PairConfig.read` for what ``data.pairs`` may change."""
    d = config.data
    if preprocess is None:
        preprocess = get_config(config.model, **config.model_overrides).preprocess
    simulator = None
    if d.bank != "none":
        bank = ImprintBank.load(d.bank)
        if d.autoencoders is not None:
            bank = bank.subset([n for n in d.autoencoders if n in bank.names])
        simulator = ImprintSimulator(bank, d.simulator)
    recon = read_recon_cache(d.recon_cache) if d.recon_cache else None
    if recon is not None and d.autoencoders is not None:
        recon = restrict_recon_cache(recon, d.autoencoders)
    samples = generated_samples(config)
    real, generated, _, _ = training_images(config, samples)
    real_weights, generated_weights = sampling_weights(config, real, generated, samples)
    return PairDataset(
        real,
        d.pairs,
        simulator,
        recon,
        generated,
        seed=config.run.seed,
        real_weights=real_weights,
        generated_weights=generated_weights,
        preprocess=preprocess,
    )


@dataclass
class _Run:
    """What one training process works with, built by the ``build_*`` functions below."""

    config: TrainConfig
    device: torch.device
    rank: int
    world: int
    out_dir: Path
    model: nn.Module
    step_module: TrainStep
    trainable: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    start: int = 0


def setup_process(config: TrainConfig) -> tuple[torch.device, int, int]:
    """(device, rank, world size): joins the process group under torchrun and pins the thread count."""
    device = _device(config.run.device)
    rank, world = _init_distributed(device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    return device, rank, world


def build_step_module(config: TrainConfig, device: torch.device) -> tuple[nn.Module, TrainStep]:
    """The model and the module that computes its logits and Difference-Aware loss for one batch."""
    model = create_model(config.model, **config.model_overrides)
    if model.config.uses_image_view:
        # Training pairs are crops (a twin exists only where it was made): a branch trained on crop views would
        # meet whole-image views at inference, so such a model cannot be trained here.
        raise SetupError(f"{config.model}: semantic_view='image' cannot be trained on crops; use semantic_view=crops")
    if config.init.noise_extractor:
        if model.imprint is None:
            raise SetupError(f"init.noise_extractor is set but {config.model} has no noise branch")
        try:
            init_noise_extractor(model.imprint.extractor, config.init.noise_extractor)
        except ValueError as exc:
            raise SetupError(str(exc)) from None
    da_loss = None
    if model.da_head is not None:
        c = model.config
        encoder = create_autoencoder(c.da_encoder)
        da_loss = DifferenceAwareLoss(encoder, c.da_grid, c.da_crop, c.da_pairs, centred=c.da_centred)
    step_module = TrainStep(model, da_loss).to(device)
    if config.run.channels_last:
        step_module = step_module.to(memory_format=torch.channels_last)
    return model, step_module


def build_runner(run: _Run) -> nn.Module:
    """The step module as the loop calls it: wrapped in DDP under torchrun, compiled on request."""
    runner: nn.Module = run.step_module
    if run.world > 1:
        device_ids = [run.device] if run.device.type == "cuda" else None
        runner = nn.parallel.DistributedDataParallel(run.step_module, device_ids=device_ids)
    return torch.compile(runner) if run.config.run.compile else runner


def build_loader(run: _Run) -> DataLoader:
    """Aligned pairs for steps ``start..steps-1``; each rank loads its own slots of every global batch."""
    config = run.config
    batch_pairs = config.optim.batch_pairs
    return DataLoader(
        build_dataset(config, run.model.config.preprocess),
        batch_size=len(range(run.rank, batch_pairs, run.world)),
        sampler=StepSampler(run.start, config.optim.steps, batch_pairs, run.rank, run.world),
        num_workers=config.run.workers,
        collate_fn=collate_pairs,
        worker_init_fn=_worker_init,
        pin_memory=run.device.type == "cuda",
        prefetch_factor=4 if config.run.workers else None,
    )


def restore(run: _Run, resume: bool, say: Callable[[str], None]) -> None:
    """Continue from the newest checkpoint when resuming (and say from where)."""
    if resume and (ckpt := latest_checkpoint(run.out_dir)) is not None:
        run.start = int(load_checkpoint(ckpt, run.model, run.optimizer)["step"])
        say(f"resumed from step {run.start} ({ckpt})")
    elif resume:
        say(f"no checkpoint in {run.out_dir}: starting at step 0")


def train(
    config: TrainConfig,
    resume: bool = False,
    show_progress: bool = True,
    overwrite: bool = False,
    on_message: Callable[[str], None] | None = None,
) -> Path:
    """Train a model; returns the folder of the final model (``<out_dir>/final``). Raises :class:`SetupError`
    before any work when the run cannot start (see :func:`check_inputs`, :func:`prepare_run_folder`)."""
    say = on_message or (lambda _: None)
    check_inputs(config)
    if model_entry(config.model).architecture.arch == "frozen_probe":  # fitted in closed form, not by steps
        from .probe_fit import fit_probe

        return fit_probe(config, resume, show_progress, overwrite, say)
    device, rank, world = setup_process(config)
    out_dir = Path(config.run.out_dir)
    if rank == 0:
        prepare_run_folder(out_dir, resume, overwrite)
    torch.manual_seed(config.run.seed)
    model, step_module = build_step_module(config, device)
    trainable = [p for p in step_module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.optim.lr, weight_decay=config.optim.weight_decay)
    run = _Run(config, device, rank, world, out_dir, model, step_module, trainable, optimizer)
    restore(run, resume, say)
    if rank == 0:
        atomic_write_text(out_dir / "config.yaml", dump_config(config))
        write_validation_manifest(config, out_dir)
    logger = MetricLogger(
        out_dir, enabled=rank == 0, show_progress=show_progress, total=config.optim.steps, start=run.start
    )
    run_steps(run, build_runner(run), build_loader(run), logger)
    logger.close()
    final = out_dir / "final"
    checksums = _rank_checksums(model, world)
    if rank == 0:
        model.eval().save_pretrained(final)
        summary = {"steps": config.optim.steps, **logger.last}
        if world > 1:
            summary["rank_weight_checksums"] = checksums  # identical on every rank, or DDP went wrong
        atomic_write_text(out_dir / "summary.json", json.dumps(summary, indent=1))
    if world > 1:
        dist.barrier()
    return final


def _rank_checksums(model: nn.Module, world: int) -> list[float]:
    """Every rank's sum of squared weights (float64), gathered; one value without torchrun."""
    local = torch.stack([p.detach().double().pow(2).sum() for p in model.parameters()]).sum().reshape(1)
    if world <= 1:
        return [float(local)]
    gathered = [torch.zeros_like(local) for _ in range(world)]
    dist.all_gather(gathered, local)
    return [float(g) for g in gathered]


def run_steps(run: _Run, runner: nn.Module, loader: DataLoader, logger: MetricLogger) -> None:
    """The optimisation loop: one global batch of aligned pairs per step, checkpoints every ``checkpoint_every``.

    Every step reseeds torch from ``(seed, step)`` before its forward pass, so a resumed run is bit-identical to
    an uninterrupted one."""
    config, device, seed = run.config, run.device, run.config.run.seed
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.run.amp)
    use_amp = device.type == "cuda" and amp_dtype is not None
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype == torch.float16)
    lambda_da = run.model.config.lambda_da if run.model.da_head is not None else 0.0
    smoothing = run.model.config.label_smoothing
    optimizer = run.optimizer
    runner.train()
    wait_start = time.perf_counter()
    for step, (real, fake, kinds) in enumerate(loader, start=run.start):
        data_time = time.perf_counter() - wait_start
        torch.manual_seed(seed * 1_000_003 + step)
        generator = torch.Generator().manual_seed(seed * 7_919 + step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        real = real.to(device, non_blocking=True).float().div_(255)
        fake = fake.to(device, non_blocking=True).float().div_(255)
        if config.run.channels_last:
            real = real.contiguous(memory_format=torch.channels_last)
            fake = fake.contiguous(memory_format=torch.channels_last)
        labels = torch.cat([torch.zeros(len(real)), torch.ones(len(fake))]).to(device)
        autocast = torch.autocast(device.type, dtype=amp_dtype) if use_amp else nullcontext()
        with autocast:
            logits, l_da = runner(real, fake, generator, kinds.to(device) != GENERATED)
            l_bce = bce_with_smoothing(logits.float(), labels, smoothing)
            loss = l_bce + lambda_da * l_da.float()
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(run.trainable, config.optim.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        with torch.no_grad():
            acc = ((logits.float() > 0).float() == labels).float().mean()
        logger.step(
            step + 1,
            {
                "loss": float(loss.detach()),
                "bce": float(l_bce.detach()),
                "l_da": float(l_da.detach()),
                "acc": float(acc),
                "lr": optimizer.param_groups[0]["lr"],
                "grad_norm": float(grad_norm),
                "data_s": data_time,
                "step_s": time.perf_counter() - wait_start - data_time,
                "sim_share": float((kinds == 0).float().mean()),
            },
            log=(step + 1) % config.run.log_every == 0,
        )
        if run.rank == 0 and ((step + 1) % config.run.checkpoint_every == 0 or step + 1 == config.optim.steps):
            save_checkpoint(run.out_dir, step + 1, run.model, optimizer, {"metrics": logger.last})
        wait_start = time.perf_counter()
