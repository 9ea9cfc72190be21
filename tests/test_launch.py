"""Real launches: `accelerate launch train_gan.py` and a 2-process `torchrun` (gloo, MULTI_CPU) run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gan_color import checkpoint as ckpt

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def launch(cmd: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "PYTHONUNBUFFERED": "1"}
    env.pop("ACCELERATE_MIXED_PRECISION", None)
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_accelerate_launch_cpu(tmp_path):
    accelerate = shutil.which("accelerate", path=str(BIN)) or shutil.which("accelerate")
    launch([accelerate, "launch", "--config_file", "configs/accelerate/cpu.yaml", "train_gan.py", "--config",
            "configs/tiny_cpu.yaml",
            f"train.output_dir={tmp_path}", "optim.steps=4", "optim.decay_steps=2"], tmp_path)
    run = tmp_path / "tiny"
    assert (run / "generator.safetensors").is_file()
    assert ckpt.latest_checkpoint(run / "checkpoints").name == "step_00000004"


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    torchrun = shutil.which("torchrun", path=str(BIN)) or shutil.which("torchrun")
    result = launch([torchrun, "--nproc_per_node", "2", "--master_port", "29517", "train_gan.py", "--config",
                     "configs/tiny_cpu.yaml", f"train.output_dir={tmp_path}", "optim.steps=4",
                     "optim.decay_steps=2", "tracking.tensorboard=true"], tmp_path)
    run = tmp_path / "tiny"
    latest = ckpt.latest_checkpoint(run / "checkpoints")
    assert latest.name == "step_00000004"
    assert {p.name for p in latest.glob("rng_rank*.pt")} == {"rng_rank0.pt", "rng_rank1.pt"}
    meta = json.loads((latest / "meta.json").read_text())
    assert meta["world_size"] == 2
    rows = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [2, 4]  # only the main process writes
    assert any((run / "tensorboard").rglob("events.out.tfevents*"))
    assert result.stderr.count("Traceback") == 0
