"""The training loop shared by the GAN and every baseline: Accelerate (CPU, one or many GPUs, mixed precision),
full-state checkpoints with auto-resume, metrics.jsonl, probe grids, trackers and the inference export."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from gan_color import checkpoint as ckpt
from gan_color import fast
from gan_color.config import Config, ConfigError, load_config, save_config, to_dict
from gan_color.data import add_lab, build_dataset, holdout_keys, split_dataset
from gan_color.devices import has_accelerator, launch_rank, training_device_type
from gan_color.ema import make_ema, update_ema
from gan_color.inference import WEIGHTS_NAME, ExportSpec, find_export, load_spec
from gan_color.loader import make_train_loader
from gan_color.models import build_colorizer, build_discriminator
from gan_color.objectives import Objective
from gan_color.registry import OBJECTIVES
from gan_color.resume import find_resume, restore, save
from gan_color.runlock import RunLock
from gan_color.safeio import atomic_write_text
from gan_color.sampling import choose_probes, log_samples, predict_ab, render_grid
from gan_color.tracking import JsonlLogger, init_trackers, load_tracking, requested_trackers
from gan_color.validation import validate, validation_batches

HOLDOUT_LIST = "holdout.txt"


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf; the run stops before that state can reach a checkpoint."""


@dataclass
class Run:
    """Everything the loop touches, built once by `setup`."""

    cfg: Config
    accelerator: Accelerator
    objective: Objective
    networks: dict[str, nn.Module]  # the plain modules (weights are shared with the prepared ones)
    prepared: dict[str, nn.Module]  # what Accelerate returned (DDP / autocast wrappers)
    optimizers: dict[str, Any]
    schedulers: dict[str, torch.optim.lr_scheduler.LambdaLR]
    loader: Any
    probes: dict[str, Any]  # gray_l / real_ab / rgb batches and "labels" (seen / unseen, or empty)
    val_batches: list[dict[str, torch.Tensor]]
    ema: nn.Module | None = None  # the generator's weight average (optim.ema_decay > 0): what is exported and shown
    step: int = 0
    tracking: dict[str, Any] = field(default_factory=dict)
    prepared_values: dict[str, Any] = field(default_factory=dict)  # what `objective.prepare` returned, logged once
    config_changes: dict[str, list[Any]] = field(default_factory=dict)  # {key: [checkpoint's, now]} on a resume

    @property
    def run_dir(self) -> Path:
        return self.cfg.run_dir

    @property
    def inference_generator(self) -> nn.Module:
        """The generator that is exported, drawn in the probe grids and validated: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.networks["generator"]

    @property
    def stepped_networks(self) -> dict[str, nn.Module]:
        """The networks as the objective steps them: Accelerate's wrappers (DDP, autocast) where prepared."""
        return {**self.networks, **self.prepared}

    def export_spec(self) -> ExportSpec:
        kwargs = self.objective.model_kwargs(self.cfg.model.kwargs)
        if kwargs.get("pretrained"):  # the export's own weights replace any pretrained init: loading needs none
            kwargs["pretrained"] = False
        return ExportSpec(arch=self.cfg.model.name, kwargs=kwargs,
                          image_size=self.cfg.data.size, run=self.cfg.name, step=self.step,
                          objective=self.cfg.objective.name, **self.objective.export_fields())


def pix2pix_schedule(total_steps: int, decay_steps: int):
    """pix2pix `linear` policy in steps: lr constant for total-decay steps, then linearly to zero."""
    constant = total_steps - decay_steps

    def factor(step: int) -> float:
        return 1.0 - max(0, step + 1 - constant) / float(decay_steps + 1)

    return factor


def make_accelerator(cfg: Config) -> Accelerator:
    # "no" in the config defers to the launcher (`accelerate launch --mixed_precision bf16`); fp16/bf16 here win.
    mixed = None if cfg.train.mixed_precision == "no" else cfg.train.mixed_precision
    if mixed == "fp16" and not has_accelerator():
        raise ValueError("train.mixed_precision=fp16 needs a GPU (CPU autocast is bf16-only); use bf16 or no")
    trackers = requested_trackers(wandb=cfg.tracking.wandb, tensorboard=cfg.tracking.tensorboard)
    project = ProjectConfiguration(project_dir=str(cfg.run_dir), logging_dir=str(cfg.run_dir / "tensorboard"))
    # Without a GPU, Accelerate only recognises a torchrun/mpirun multi-process launch (MULTI_CPU, gloo) when told
    # it runs on CPU; otherwise every process would train alone.
    # Pinned batches (pin_memory on CUDA) copied without blocking the host.
    data = DataLoaderConfiguration(non_blocking=True)
    return Accelerator(mixed_precision=mixed, log_with=trackers or None, project_config=project,
                       cpu=not has_accelerator(), dataloader_config=data)


def build_networks(cfg: Config, objective: Objective) -> dict[str, nn.Module]:
    networks = {"generator": build_colorizer(cfg.model.name, **objective.model_kwargs(cfg.model.kwargs))}
    if cfg.model.init:
        init_generator(networks["generator"], cfg)
    if objective.uses_discriminator:
        networks["discriminator"] = build_discriminator(cfg.discriminator.name, **cfg.discriminator.kwargs)
    if cfg.train.channels_last:
        networks = {k: v.to(memory_format=torch.channels_last) for k, v in networks.items()}
    return networks


def build_data(cfg: Config, accelerator: Accelerator):
    data = cfg.data
    common = dict(size=data.size, limit=data.limit, drop_grayscale=data.drop_grayscale,
                  min_colorfulness=data.min_colorfulness, seed=cfg.seed, embedded_length=data.embedded_length)
    with accelerator.main_process_first():
        train_set = build_dataset(data.train, train=True, to_lab=False, **common)
        held_out = build_dataset(data.val or data.train, train=False, to_lab=True, **common)
    seen = None  # eval crops of training images, for labelled seen/unseen probe rows
    if not data.val:
        train_set, held_out, seen = hold_out(train_set, held_out, cfg, accelerator)
    loader, _ = make_train_loader(train_set, batch_size=data.batch_size, num_workers=data.num_workers,
                                  seed=cfg.seed, pin_memory=accelerator.device.type == "cuda")
    probes = choose_probes(held_out, seen, cfg.train.num_probes, seed=cfg.seed)
    val_batches = validation_batches(held_out, cfg.train.validate_images, batch_size=data.batch_size,
                                     seed=cfg.seed + 1) if cfg.train.validate_every else []
    return train_set, loader, probes, val_batches


def hold_out(train_set, eval_set, cfg: Config, accelerator: Accelerator):
    """Without `data.val`: split `data.train` by its seeded held-out keys; the held-out images never train and are
    what probes and validation show. Their names go to `holdout.txt` in the run folder. Returns the training set,
    the held-out eval crops and the training images' eval crops (None without a split) for labelled probe rows."""
    keys = holdout_keys([eval_set.split_key(i) for i in range(len(eval_set))], cfg.data.holdout, cfg.data.holdout_seed)
    if not keys:
        accelerator.print("no held-out split (data.holdout=0 or a single image): probes and validation show "
                          "training images")
        return train_set, eval_set, None
    train_set = split_dataset(train_set, keys, keep_held_out=False)
    held_out = split_dataset(eval_set, keys, keep_held_out=True)
    accelerator.print(f"held out {len(held_out)} of {len(held_out) + len(train_set)} images of data.train "
                      f"(data.holdout={cfg.data.holdout}, seed {cfg.data.holdout_seed}); probes and validation use "
                      f"them, training never does (list: {cfg.run_dir / HOLDOUT_LIST})")
    if accelerator.is_main_process:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cfg.run_dir / HOLDOUT_LIST, "".join(f"{k}\n" for k in sorted(keys)))
    return train_set, held_out, split_dataset(eval_set, keys, keep_held_out=False)


def init_generator(generator: nn.Module, cfg: Config) -> None:
    """`model.init`: copy an export's weights (same architecture) into the freshly built generator."""
    spec = load_spec(cfg.model.init)
    if spec.arch != cfg.model.name:
        raise ConfigError(f"model.init={cfg.model.init!r} holds a {spec.arch!r}, not model.name={cfg.model.name!r}")
    state = load_file(str(find_export(cfg.model.init) / WEIGHTS_NAME))
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        raise ConfigError(f"model.init={cfg.model.init!r} does not fit model.kwargs ({first_line})") from None


def setup(cfg: Config) -> Run:
    cfg = fast.resolve(cfg)  # train.recipe=fast: its precision, layout and compile on a GPU (plain: unchanged)
    fast.configure_backends(cfg.train.recipe, training_device_type())
    accelerator = make_accelerator(cfg)
    set_seed(cfg.seed)  # identical initial weights on every process
    objective: Objective = OBJECTIVES.build(cfg.objective.name, **cfg.objective.kwargs)
    networks = fast.prepare_networks(build_networks(cfg, objective), cfg.train.recipe)
    train_set, loader, probes, val_batches = build_data(cfg, accelerator)
    optimizers = {
        name: fast.make_adam(net.parameters(), recipe=cfg.train.recipe, lr=cfg.optim.lr,
                             betas=(cfg.optim.beta1, cfg.optim.beta2), weight_decay=cfg.optim.weight_decay)
        for name, net in networks.items()
    }
    factor = pix2pix_schedule(cfg.optim.steps, cfg.optim.decay_steps)
    # A phase that rests a network (pix2pix's gan_start / d_warmup) skips its optimizer's step while its schedule
    # keeps counting global steps, which is what we want; torch would warn about it once.
    warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before", UserWarning)
    # Schedulers are stepped once per optimisation step by us, not prepared: Accelerate would step them once per
    # process, while optim.steps counts global steps.
    schedulers = {name: torch.optim.lr_scheduler.LambdaLR(opt, factor) for name, opt in optimizers.items()}
    compiled = {k: fast.compile_network(v, cfg.train.compile_mode) if cfg.train.compile else v
                for k, v in networks.items()}
    # One documented order: networks, then optimizers, then the loader.
    names = list(networks)
    prepared = accelerator.prepare(*[compiled[n] for n in names], *[optimizers[n] for n in names], loader)
    run = Run(cfg=cfg, accelerator=accelerator, objective=objective, networks=networks,
              prepared=dict(zip(names, prepared[: len(names)])),
              optimizers=dict(zip(names, prepared[len(names): 2 * len(names)])), schedulers=schedulers,
              loader=prepared[-1], probes=probes, val_batches=val_batches,
              ema=make_ema(networks["generator"], cfg.optim.ema_decay))
    run.run_dir.mkdir(parents=True, exist_ok=True)
    resume_from = find_resume(cfg)
    if resume_from is not None:
        restore(run, resume_from)
        if run.config_changes:
            apply_optim_settings(run)
    with accelerator.main_process_first():
        run.prepared_values = objective.prepare(dataset=train_set, run_dir=run.run_dir, accelerator=accelerator)
    return run


def apply_optim_settings(run: Run) -> None:
    """The config's lr, betas, weight decay and schedule (steps, decay_steps) from the resumed step on: a
    checkpoint's optimizer and scheduler states hold the values it was written with."""
    optim = run.cfg.optim
    factor = pix2pix_schedule(optim.steps, optim.decay_steps)
    for name, optimizer in run.optimizers.items():
        scheduler = run.schedulers[name]
        scheduler.base_lrs = [optim.lr] * len(optimizer.param_groups)
        for group in optimizer.param_groups:
            group.update(initial_lr=optim.lr, lr=optim.lr * factor(scheduler.last_epoch),
                         betas=(optim.beta1, optim.beta2), weight_decay=optim.weight_decay)
        scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def render_probes(run: Run) -> Path:
    device = run.accelerator.device
    gray_l = run.probes["gray_l"].to(device)
    fake_ab = predict_ab(run.inference_generator, gray_l, run.export_spec())
    return render_grid(gray_l, fake_ab, run.probes["real_ab"].to(device),
                       run.run_dir / "samples" / f"step_{run.step:08d}.png", labels=run.probes.get("labels"))


def log_values(run: Run, sums: dict[str, torch.Tensor], steps: int, images: int, seconds: float) -> dict[str, float]:
    """Reduce the accumulated losses (the only host sync of the interval) and stop on a non-finite one."""
    values = {k: (run.accelerator.reduce(v, reduction="mean") / steps).item() for k, v in sums.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    if bad:
        last = ckpt.latest_checkpoint(run.run_dir / "checkpoints")
        raise NonFiniteLossError(
            f"non-finite loss at step {run.step} ({', '.join(f'{k}={values[k]}' for k in bad)}); the run stopped "
            f"without saving. Last good checkpoint: {last or 'none'}. Try a lower optim.lr or train.mixed_precision="
            "no / bf16."
        )
    values["lr"] = run.schedulers["generator"].get_last_lr()[0]
    values["images_per_sec"] = images * run.accelerator.num_processes / max(seconds, 1e-9)
    return values


def train_step(run: Run, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One optimisation step on a loader batch, as the loop takes it (and the benchmark times it): Lab on the device,
    channels-last if configured, the objective's step through the prepared networks, the schedulers, and `run.step`
    advanced, the generator's EMA updated. Returns the objective's (device, unsynced) losses."""
    if run.cfg.train.compile:
        fast.begin_step(run.cfg.train.compile_mode)
    batch = add_lab(batch)
    if run.cfg.train.channels_last:
        batch = {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in batch.items()}
    run.objective.step = run.step  # the global step this update makes (objectives with phases read it)
    losses = run.objective.training_step(batch, run.stepped_networks, run.optimizers, run.accelerator)
    for scheduler in run.schedulers.values():
        scheduler.step()
    if run.ema is not None:
        update_ema(run.ema, run.networks["generator"])
    run.step += 1
    return losses


def train_steps(run: Run) -> None:
    cfg, acc = run.cfg, run.accelerator
    steps_per_epoch = len(run.loader)
    logger = JsonlLogger(run.run_dir / "metrics.jsonl", resume_step=run.step) if acc.is_main_process else None
    bar = tqdm(total=cfg.optim.steps, initial=run.step, disable=not acc.is_local_main_process, desc=cfg.name,
               dynamic_ncols=True)
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}  # steps that reported each loss (an objective's phases report different losses)
    interval_steps, interval_images, tic = 0, 0, time.perf_counter()
    while run.step < cfg.optim.steps:
        epoch, skip = divmod(run.step, steps_per_epoch)
        loader = acc.skip_first_batches(run.loader, skip) if skip else run.loader
        loader.set_epoch(epoch)  # the sampler's permutation and the items' augmentation seeds
        for batch in loader:
            losses = train_step(run, batch)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0) + value.float()
                counts[key] = counts.get(key, 0) + 1
            interval_steps += 1
            interval_images += batch["rgb"].shape[0]
            bar.update(1)
            if run.step % cfg.train.log_every == 0 or run.step == cfg.optim.steps:
                sums = {k: v * (interval_steps / counts[k]) for k, v in sums.items()}  # each loss: mean of its steps
                values = log_values(run, sums, interval_steps, interval_images, time.perf_counter() - tic)
                if cfg.train.validate_every and run.step % cfg.train.validate_every == 0 and run.val_batches:
                    values.update(validate(run.inference_generator, run.val_batches, spec=run.export_spec(),
                                           objective=run.objective, accelerator=acc, step=run.step))
                if logger is not None:
                    logger.log(values, step=run.step)
                acc.log(values, step=run.step)
                bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in values.items() if k.startswith("loss/")}
                                | {"img/s": f"{values['images_per_sec']:.1f}"})
                sums, counts, interval_steps, interval_images, tic = {}, {}, 0, 0, time.perf_counter()
            if acc.is_main_process and (run.step % cfg.train.sample_every == 0 or run.step == cfg.optim.steps):
                log_samples(acc, render_probes(run), step=run.step)
            if run.step % cfg.train.checkpoint_every == 0 or run.step == cfg.optim.steps:
                if sums:  # the losses since the last log must be finite before this state is kept
                    log_values(run, sums, max(interval_steps, 1), interval_images, 1.0)
                save(run)
            if run.step >= cfg.optim.steps:
                break
    bar.close()


def main(cfg: Config) -> Path:
    """Train `cfg` to completion (resuming the run folder's latest checkpoint); returns the run folder. The run
    folder is locked for the whole run: a second run on it stops with an error naming this one."""
    with RunLock(cfg.run_dir, enabled=launch_rank() == 0):  # the main process of a multi-process launch holds it
        return _train(cfg)


def _train(cfg: Config) -> Path:
    run = setup(cfg)
    acc = run.accelerator
    if acc.is_main_process:
        save_config(cfg, run.run_dir / "config.yaml")
    previous = load_tracking(run.run_dir)
    run.tracking = init_trackers(acc, run_dir=run.run_dir, run_name=cfg.name, project=cfg.tracking.project,
                                 group=cfg.tracking.group, entity=cfg.tracking.entity, config=to_dict(cfg),
                                 wandb_run_id=run.tracking.get("wandb_run_id") or previous.get("wandb_run_id"))
    if cfg.tracking.tensorboard:  # to watch while it trains
        acc.print(f"TensorBoard: tensorboard --logdir {run.run_dir / 'tensorboard'}")
    if run.config_changes and acc.is_main_process:  # the history of settings, next to the losses they explain
        JsonlLogger(run.run_dir / "metrics.jsonl", resume_step=run.step).log(
            {"config_change": run.config_changes}, step=run.step)
    if run.prepared_values and acc.is_main_process:
        JsonlLogger(run.run_dir / "metrics.jsonl", resume_step=run.step).log(run.prepared_values, step=run.step)
    try:
        if run.step < cfg.optim.steps:
            train_steps(run)
        else:
            acc.print(f"{cfg.name}: already trained to step {run.step}; nothing to do")
    finally:
        acc.end_training()
    if acc.is_main_process:
        print(finish_message(run), flush=True)
    return run.run_dir


def finish_message(run: Run) -> str:
    """What a finished run wrote, where to watch it, and what to run next."""
    d, cfg = run.run_dir, run.cfg
    samples = sorted((d / "samples").glob("step_*.png"))
    latest = ckpt.latest_checkpoint(d / "checkpoints")
    lines = [f"{cfg.name}: trained to step {run.step}; everything is in {d}/",
             f"  model export   {d / 'generator.safetensors'} (+ generator.json)",
             f"  probe grids    {d / 'samples'}/ (latest: {samples[-1].name if samples else 'none'}; each row gray "
             "input | generated | ground truth)",
             f"  metrics        {d / 'metrics.jsonl'}",
             f"  checkpoint     {latest or 'none'} (rerun the same command to continue from it)"]
    if cfg.tracking.tensorboard:
        lines.append(f"  TensorBoard    tensorboard --logdir {d / 'tensorboard'}")
    if run.tracking.get("wandb_run_id"):
        offline = os.environ.get("WANDB_MODE", "").lower() in ("offline", "dryrun")
        lines.append(f"  W&B            run {run.tracking['wandb_run_id']} in project {cfg.tracking.project!r}"
                     + (f" (offline: wandb sync {d / 'wandb'}/offline-run-*)" if offline else ""))
    lines += [f"next: gan-color colorize --model {d} PHOTOS --out colorized/",
              f"      gan-color evaluate --model {d} --data DIR   (scores it on a folder of colour photos)"]
    return "\n".join(lines)


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="YAML experiment config: configs/quickstart.yaml, configs/gan/*.yaml, configs/baselines/"
                             "*.yaml, or a run's own runs/<name>/config.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help="config values to change, e.g. optim.lr=1e-4 data.train=/data/photos (typed; a typo is "
                             "an error naming the closest key)")


def run_cli(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    try:
        main(cfg)
    except (NonFiniteLossError, ckpt.CheckpointError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0
