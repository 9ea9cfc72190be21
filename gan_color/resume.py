"""A training run's full state on disk: `save` (checkpoint + inference export), which checkpoint a run resumes from,
`restore`, and the settings that changed since that checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from gan_color import checkpoint as ckpt
from gan_color.config import Config, to_dict, with_defaults
from gan_color.devices import launch_rank
from gan_color.ema import EMA_NAME, reset_ema
from gan_color.inference import save_export
from gan_color.objectives import Objective
from gan_color.tracking import flatten

if TYPE_CHECKING:  # for annotations only: train imports this module to build and save its Run
    from gan_color.train import Run

# Keys whose change is not a change of the run (how to find the checkpoint, where to log).
UNRECORDED_KEYS = ("train.resume",)


def fingerprint(cfg: Config, objective: Objective) -> dict[str, Any]:
    """What must match for a checkpoint to be resumable: the networks' architectures and the objective."""
    d = to_dict(cfg)
    fp = {"model": d["model"], "objective": d["objective"]}
    if objective.uses_discriminator:
        fp["discriminator"] = d["discriminator"]
    return yaml.safe_load(yaml.safe_dump(fp))  # plain types, as they come back from meta.json


def find_resume(cfg: Config) -> Path | None:
    if cfg.train.resume == "never":
        if ckpt.latest_checkpoint(cfg.run_dir / "checkpoints") is not None:  # never overwrite a run's history
            raise ckpt.CheckpointError(f"train.resume=never but {cfg.run_dir} already holds checkpoints; "
                                       "choose a new run name (name=...) or delete that folder")
        return None
    if cfg.train.resume == "auto":  # a damaged newest checkpoint is skipped with a warning naming the file
        return ckpt.latest_good_checkpoint(cfg.run_dir / "checkpoints", warn=warn_once)
    path = Path(cfg.train.resume)
    if path.is_dir() and not (path / ckpt.META).exists():  # a run folder or its checkpoints/ folder
        path = ckpt.latest_checkpoint(path / "checkpoints") or ckpt.latest_checkpoint(path) or path
    ckpt.verify_checkpoint(path)  # the checkpoint asked for, or an error naming what is wrong with it
    return path


def warn_once(message: str) -> None:
    """A warning from the main process only (every process of a launch reaches the same conclusion)."""
    if launch_rank() == 0:
        print(message, file=sys.stderr, flush=True)


def restore(run: Run, path: Path) -> None:
    """Load `path` into `run` (networks, optimizers, schedulers, scaler, step, tracker ids) and record in
    `run.config_changes` the settings that differ from the checkpoint's; applying them is the caller's part."""
    meta = ckpt.read_meta(path)
    ckpt.check_compatible(path, meta.get("fingerprint", {}), fingerprint(run.cfg, run.objective))
    if not isinstance(meta.get("tracking", {}), dict):
        meta["tracking"] = {}
    has_ema = (path / f"{EMA_NAME}.safetensors").is_file()
    state = ckpt.load_checkpoint(path, networks=saved_networks(run) if has_ema else run.networks,
                                 accelerator=run.accelerator)
    if run.ema is not None and not has_ema:  # optim.ema_decay turned on since that checkpoint
        reset_ema(run.ema, run.networks["generator"])
        run.accelerator.print(f"{path} holds no generator EMA: the average starts from its generator")
    for name, optimizer in run.optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
        run.schedulers[name].load_state_dict(state["schedulers"][name])
    if run.accelerator.scaler is not None and state.get("scaler"):
        run.accelerator.scaler.load_state_dict(state["scaler"])
    run.step = int(state["step"])
    run.tracking = meta.get("tracking", {})
    run.accelerator.print(f"resumed from {path} at step {run.step}")
    run.config_changes = config_changes(meta.get("config"), run.cfg)
    if run.config_changes:  # applied, not silently dropped: the optimizer state carries the old values
        run.accelerator.print("settings changed since that checkpoint, applied from here on: " + ", ".join(
            f"{key} {old!r} -> {new!r}" for key, (old, new) in run.config_changes.items()))


def config_changes(saved: dict[str, Any] | None, cfg: Config) -> dict[str, list[Any]]:
    """{dotted key: [value in the checkpoint's config, value now]} for every setting that differs."""
    if not saved:  # a checkpoint from before configs were stored in meta.json
        return {}
    old, new = flatten(with_defaults(saved)), flatten(yaml.safe_load(yaml.safe_dump(to_dict(cfg))))
    return {key: [old.get(key), new.get(key)] for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key) and key not in UNRECORDED_KEYS}


def saved_networks(run: Run) -> dict[str, Any]:
    """The modules a checkpoint holds: every network, and the generator's EMA (with its update count) if any."""
    return {**run.networks, EMA_NAME: run.ema} if run.ema is not None else dict(run.networks)


def save(run: Run) -> None:
    """Full checkpoint (every process) plus the inference export (main process) of the generator, or of its EMA."""
    acc = run.accelerator
    state = {
        "step": run.step,
        "optimizers": {name: opt.state_dict() for name, opt in run.optimizers.items()},
        "schedulers": {name: s.state_dict() for name, s in run.schedulers.items()},
        "scaler": acc.scaler.state_dict() if acc.scaler is not None else {},
    }
    meta = {"fingerprint": fingerprint(run.cfg, run.objective), "tracking": run.tracking, "run": run.cfg.name,
            "config": yaml.safe_load(yaml.safe_dump(to_dict(run.cfg)))}  # to tell a resume what changed
    ckpt.save_checkpoint(run.run_dir / "checkpoints", step=run.step, networks=saved_networks(run),
                         training_state=state, meta=meta, accelerator=acc, keep=run.cfg.train.keep_checkpoints)
    if acc.is_main_process:
        save_export(run.inference_generator, run.export_spec(), run.run_dir)
