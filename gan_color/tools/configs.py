"""Where the tools find the experiment configs: a folder named explicitly (`--configs DIR`, else $GAN_COLOR_CONFIGS),
or the configs installed with the package as `gan_color.configs` (the checkout's configs/ in an editable install,
a copy inside the package in a wheel)."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

ENV_VAR = "GAN_COLOR_CONFIGS"
PACKAGE = "gan_color.configs"


class ConfigNotFoundError(FileNotFoundError):
    """A config the tools need is not where they looked; the message names the path and how it was chosen."""


def locate_configs(override: str | os.PathLike | None = None) -> tuple[Path, str]:
    """(configs folder, how it was chosen): `override`, else $GAN_COLOR_CONFIGS, else the installed package data."""
    if override:
        return Path(override), "--configs"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]), f"${ENV_VAR}"
    try:
        return Path(str(importlib.resources.files(PACKAGE))), f"the installed {PACKAGE}"
    except ModuleNotFoundError:
        raise ConfigNotFoundError(f"no configs folder: {PACKAGE} is not installed (pip install -e . installs it); "
                                  f"pass --configs DIR or set {ENV_VAR}") from None


def configs_dir(override: str | os.PathLike | None = None) -> Path:
    """The configs folder (see `locate_configs`)."""
    return locate_configs(override)[0]


def config_path(name: str | os.PathLike, configs: str | os.PathLike | None = None) -> Path:
    """The config `name` (relative to the configs folder, e.g. "baselines/regression_cnn_l2_lab.yaml"); a
    ConfigNotFoundError names the file looked for when it is not there."""
    return _existing(name, configs, what="config", exists=Path.is_file)


def config_files(folder: str | os.PathLike, configs: str | os.PathLike | None = None) -> list[Path]:
    """Every YAML config of `folder` (relative to the configs folder, e.g. "baselines"), sorted; a
    ConfigNotFoundError names the folder looked for when it is not there."""
    return sorted(_existing(folder, configs, what="configs folder", exists=Path.is_dir).glob("*.yaml"))


def _existing(relative: str | os.PathLike, configs: str | os.PathLike | None, *, what: str, exists) -> Path:
    root, source = locate_configs(configs)
    path = root / relative
    if not exists(path):
        raise ConfigNotFoundError(f"{what} {Path(relative).as_posix()!r} not found: looked for {path} (configs "
                                  f"folder from {source})")
    return path
