"""Full training-state checkpoints: written atomically, rotated, found for auto-resume, loaded with weights_only.

Layout of `checkpoints/step_XXXXXXXX/`: one `<network>.safetensors` per network (`generator_ema` too with
`optim.ema_decay`), `training_state.pt` (optimizers, schedulers, grad scaler, step: an objective holds nothing else
to save, since its phase follows from the step and the classifier's prior is `class_prior.json` in the run folder),
`rng_rank<R>.pt` per process, `manifest.json` (size and SHA-256 of each of those) and `meta.json` written last.
Every file and the folder are fsynced before the folder is renamed into place, so a killed write leaves the previous
checkpoint intact; on resume each checkpoint is verified against its manifest, and a damaged newest one is skipped
with a warning naming the file.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from gan_color.safeio import file_sha256, fsync_dir

PREFIX = "step_"
META = "meta.json"
MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used for this run (missing, incomplete or from an incompatible config)."""


def step_dir_name(step: int) -> str:
    return f"{PREFIX}{step:08d}"


def list_checkpoints(root: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under `root`, oldest first (a folder counts only once its meta.json exists)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX):].isdigit()]
    return sorted((p for p in found if (p / META).is_file()), key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(root: str | os.PathLike) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    """This process's RNG states in a weights_only-loadable form (tensors, ints, lists)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    python_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": [python_state[0], list(python_state[1]), python_state[2]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(root: str | os.PathLike, *, step: int, networks: dict[str, nn.Module], training_state: dict,
                    meta: dict[str, Any], accelerator: Any, keep: int) -> Path:
    """Write checkpoint `step` under `root` from every process (networks from the main one), then rotate."""
    root = Path(root)
    final = root / step_dir_name(step)
    tmp = root / f".tmp_{step_dir_name(step)}"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    rng_file = tmp / f"rng_rank{accelerator.process_index}.pt"
    torch.save(rng_state(), rng_file)
    _fsync(rng_file)
    if accelerator.is_main_process:
        for name, network in networks.items():
            tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
            save_file(tensors, str(tmp / f"{name}.safetensors"))
        torch.save(training_state, tmp / "training_state.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        manifest = {}
        for file in sorted(tmp.iterdir()):
            _fsync(file)
            manifest[file.name] = {"size": file.stat().st_size, "sha256": file_sha256(file)}
        _write_synced(tmp / MANIFEST, json.dumps(manifest, indent=2))
        meta = {**meta, "step": step, "time": time.time(), "world_size": accelerator.num_processes}
        _write_synced(tmp / META, json.dumps(meta, indent=2))
        fsync_dir(tmp)
        if final.exists():  # the same step written again (e.g. the final save): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(root)
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _fsync(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def verify_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """meta.json of checkpoint `path` once every file matches the manifest's size and SHA-256; CheckpointError
    naming the first damaged or missing file otherwise. (Checkpoints from before manifests: meta only.)"""
    path = Path(path)
    meta = read_meta(path)
    if not (path / MANIFEST).is_file():
        return meta
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        entries = [(name, int(entry["size"]), str(entry["sha256"])) for name, entry in manifest.items()]
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {path} is damaged: {MANIFEST} is unreadable ({err})") from None
    for name, size, sha256 in entries:
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is damaged: {name} is missing")
        if file.stat().st_size != size:
            raise CheckpointError(f"checkpoint {path} is damaged: {name} has {file.stat().st_size} bytes, "
                                  f"{size} were written")
        if file_sha256(file) != sha256:
            raise CheckpointError(f"checkpoint {path} is damaged: {name} does not match its SHA-256")
    return meta


def latest_good_checkpoint(root: str | os.PathLike, *,
                           warn: Callable[[str], None] | None = None) -> Path | None:
    """The newest checkpoint under `root` that verifies; each damaged newer one is skipped with one warning."""
    warn = warn or (lambda message: print(message, file=sys.stderr))
    for path in reversed(list_checkpoints(root)):
        try:
            verify_checkpoint(path)
        except CheckpointError as err:
            warn(f"warning: {err}; skipped it, trying the one before")
            continue
        return path
    return None


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not (path / META).is_file():
        raise CheckpointError(f"{path} is not a complete gan-color checkpoint (no {META})")
    try:
        meta = json.loads((path / META).read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CheckpointError(f"checkpoint {path} is damaged: {META} is not valid JSON ({err})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} is damaged: {META} is not a JSON object")
    return meta


def check_compatible(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse a checkpoint whose networks or objective were configured differently from this run."""
    for key in current:
        if saved.get(key) != current[key]:
            raise CheckpointError(
                f"checkpoint {path} was written with {key}={saved.get(key)!r}, but this config has "
                f"{key}={current[key]!r}. Resume with the config that wrote it, or start a new run (name=...)."
            )


def load_checkpoint(path: str | os.PathLike, *, networks: dict[str, nn.Module], accelerator: Any) -> dict:
    """Load networks (strict) and this process's RNG; return the training_state dict for the loop to apply.
    Every file is read as tensors only; an unreadable one is a CheckpointError naming it."""
    path = Path(path)
    for name, network in networks.items():
        file = path / f"{name}.safetensors"
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} has no {file.name}")
        network.load_state_dict(_read(file, lambda f: load_file(str(f))), strict=True)
    rng_file = path / f"rng_rank{accelerator.process_index}.pt"
    if rng_file.is_file():
        set_rng_state(_read(rng_file, lambda f: torch.load(f, map_location="cpu", weights_only=True)))
    else:
        accelerator.print(f"warning: {rng_file.name} missing (different number of processes?); RNG not restored")
    state = _read(path / "training_state.pt", lambda f: torch.load(f, map_location="cpu", weights_only=True))
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"checkpoint {path} is damaged: training_state.pt holds no training state")
    return state


def _read(file: Path, reader: Callable[[Path], Any]) -> Any:
    try:
        return reader(file)
    except Exception as err:  # noqa: BLE001 - truncated, emptied, foreign or refused pickles: one message
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CheckpointError(f"checkpoint {file.parent} is damaged: {file.name} cannot be read "
                              f"({type(err).__name__}: {reason})") from None
