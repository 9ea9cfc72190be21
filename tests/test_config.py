"""Strict configuration: unknown keys, typed overrides, invalid combinations, the saved resolved config."""

from __future__ import annotations

from pathlib import Path

import pytest

from gan_color.config import ConfigError, load_config, save_config
from gan_color.registry import GENERATORS, OBJECTIVES, Registry

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "configs" / "tiny_cpu.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_every_shipped_config_loads():
    configs = sorted((ROOT / "configs").rglob("*.yaml"))
    assert len(configs) >= 4
    for path in configs:
        if path.parent.name in ("accelerate", "eval"):
            continue
        cfg = load_config(path)
        assert cfg.name


def test_unknown_key_names_the_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"'optim.lrr'.*did you mean 'lr'"):
        load_config(write(tmp_path, "optim: {lrr: 0.1}\n"))
    with pytest.raises(ConfigError, match=r"did you mean 'data'"):
        load_config(write(tmp_path, "dta: {size: 32}\n"))


def test_overrides_are_typed():
    cfg = load_config(TINY, ["optim.lr=1e-4", "data.size=48", "train.channels_last=true", "model.kwargs={ngf: 4}"])
    assert cfg.optim.lr == pytest.approx(1e-4) and isinstance(cfg.optim.lr, float)
    assert cfg.data.size == 48 and isinstance(cfg.data.size, int)
    assert cfg.train.channels_last is True
    assert cfg.model.kwargs == {"ngf": 4}


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=fast", r"optim.lr: expected float"),
        ("data.size=3.5", r"data.size: expected int"),
        ("train.compile=maybe", r"train.compile: expected true/false"),
        ("optim.lrr=1", r"did you mean 'lr'"),
        ("optim", r"must look like key.subkey=value"),
        ("model.kwargs.ngff=3", r"takes no argument 'ngff'.*did you mean 'ngf'"),
        ("model.name=resnet_9block", r"did you mean 'resnet_9blocks'"),
        ("objective.name=pix2pixx", r"did you mean 'pix2pix'"),
    ],
)
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TINY, [override])


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.decay_steps=100", r"decay_steps \(100\) must lie in \[0, optim.steps \(\d+\)\]"),
        ("data.size=30", r"multiple of 4"),
        ("train.mixed_precision=fp8", r"mixed_precision"),
        ("data.batch_size=0", r"batch_size"),
        ("objective.kwargs={gan_mode: wgan}", r"gan_mode"),
    ],
)
def test_invalid_combinations_rejected_up_front(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(TINY, [override])


def test_missing_file_and_bad_top_level(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(TINY, ["optim.lr=3e-4"])
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_registry_build_and_errors():
    registry = Registry("widget")

    @registry.register("box")
    def box(*, side: int = 1) -> int:
        return side * side

    assert registry.build("box", side=3) == 9
    with pytest.raises(KeyError, match="did you mean 'box'"):
        registry.get("bx")
    with pytest.raises(ValueError, match="did you mean 'side'"):
        registry.build("box", sid=2)
    with pytest.raises(KeyError, match="registered twice"):
        registry.register("box")(lambda: 0)
    assert "resnet_9blocks" in GENERATORS and "pix2pix" in OBJECTIVES


def test_a_run_written_before_a_setting_existed_compares_equal_at_its_default(tmp_path):
    import yaml

    from gan_color.config import to_dict, with_defaults
    from gan_color.resume import config_changes
    from gan_color.tools.results.training import comparable

    cfg = load_config(ROOT / "configs" / "tiny_cpu.yaml", [f"train.output_dir={tmp_path}"])
    old = yaml.safe_load(yaml.safe_dump(to_dict(cfg)))
    del old["optim"]["ema_decay"]  # a config.yaml written before optim.ema_decay existed
    assert with_defaults(old)["optim"]["ema_decay"] == 0.0
    assert config_changes(old, cfg) == {} and comparable(old, cfg)
    changed = load_config(ROOT / "configs" / "tiny_cpu.yaml", [f"train.output_dir={tmp_path}", "optim.ema_decay=0.9"])
    assert config_changes(old, changed) == {"optim.ema_decay": [0.0, 0.9]} and not comparable(old, changed)
