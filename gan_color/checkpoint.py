"""Full training-state checkpoints: written atomically, rotated, found for auto-resume, loaded with weights_only.

Layout of `checkpoints/step_XXXXXXXX/`: one `<network>.safetensors` per network, `training_state.pt` (optimizers,
schedulers, grad scaler, objective state, step), `rng_rank<R>.pt` per process, and `meta.json` written last.
A folder is only ever renamed into place once complete, so a killed write leaves the previous one intact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

PREFIX = "step_"
META = "meta.json"


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
    torch.save(rng_state(), tmp / f"rng_rank{accelerator.process_index}.pt")
    if accelerator.is_main_process:
        for name, network in networks.items():
            tensors = {k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}
            save_file(tensors, str(tmp / f"{name}.safetensors"))
        torch.save(training_state, tmp / "training_state.pt")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        meta = {**meta, "step": step, "time": time.time(), "world_size": accelerator.num_processes}
        (tmp / META).write_text(json.dumps(meta, indent=2))
        if final.exists():  # the same step written again (e.g. the final save): replace it whole
            shutil.rmtree(final)
        os.replace(tmp, final)
        for old in list_checkpoints(root)[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def read_meta(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not (path / META).is_file():
        raise CheckpointError(f"{path} is not a complete gan-color checkpoint (no {META})")
    return json.loads((path / META).read_text())


def check_compatible(path: Path, saved: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse a checkpoint whose networks or objective were configured differently from this run."""
    for key in current:
        if saved.get(key) != current[key]:
            raise CheckpointError(
                f"checkpoint {path} was written with {key}={saved.get(key)!r}, but this config has "
                f"{key}={current[key]!r}. Resume with the config that wrote it, or start a new run (name=...)."
            )


def load_checkpoint(path: str | os.PathLike, *, networks: dict[str, nn.Module], accelerator: Any) -> dict:
    """Load networks (strict) and this process's RNG; return the training_state dict for the loop to apply."""
    path = Path(path)
    for name, network in networks.items():
        file = path / f"{name}.safetensors"
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} has no {file.name}")
        network.load_state_dict(load_file(str(file)), strict=True)
    rng_file = path / f"rng_rank{accelerator.process_index}.pt"
    if rng_file.is_file():
        set_rng_state(torch.load(rng_file, map_location="cpu", weights_only=True))
    else:
        accelerator.print(f"warning: {rng_file.name} missing (different number of processes?); RNG not restored")
    return torch.load(path / "training_state.pt", map_location="cpu", weights_only=True)
