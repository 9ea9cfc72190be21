"""Strict experiment configuration: nested dataclasses from YAML, typed dotted overrides, up-front validation."""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

import gan_color.objectives  # noqa: F401  (registers the pix2pix objective that configs name)
from gan_color.fast import COMPILE_MODES, RECIPES
from gan_color.models import build_colorizer, build_discriminator, check_colorizer, colorizer_registry
from gan_color.registry import DISCRIMINATORS, OBJECTIVES, closest
from gan_color.safeio import atomic_write_text


class ConfigError(ValueError):
    """A configuration that cannot be used, with a message saying what to change."""


@dataclass
class DataConfig:
    train: str = "embedded"  # image folder(s), prepare-data cache(s), 'embedded' or a named dataset; ',' joins several
    val: str = ""  # held-out folder for probes/validation; '' = the seeded held-out split of `train` (`holdout`)
    holdout: float = 0.02  # without `val`: this fraction of `train`'s images (at least one) never trains
    holdout_seed: int = 0  # the split's seed (independent of `seed`, so every run of a dataset holds out the same)
    size: int = 64  # training crop size in px
    batch_size: int = 16
    num_workers: int = 2
    limit: int = 0  # use only the first N images (0 = all)
    drop_grayscale: bool = True  # Zhang et al.: skip images without colour
    min_colorfulness: float = 0.0  # keep only images whose Hasler-Suesstrunk score is at least this
    embedded_length: int = 2048  # random crops per epoch of the embedded scikit-image photos


@dataclass
class NetworkConfig:
    name: str = ""
    kwargs: dict[str, Any] = field(default_factory=dict)
    init: str = ""  # model only: start from this export's weights (a run folder, an export, or a shipped model name)


@dataclass
class ObjectiveConfig:
    name: str = "pix2pix"  # pix2pix (GAN) | regression | classification (baselines)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class OptimConfig:
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 0.0
    steps: int = 1000  # total optimisation steps
    decay_steps: int = 500  # pix2pix: constant lr, then linear decay to zero over the last `decay_steps`
    ema_decay: float = 0.0  # > 0: export an exponential moving average of G's weights (e.g. 0.999); 0 = off


@dataclass
class TrainConfig:
    output_dir: str = "runs"
    mixed_precision: str = "no"  # no | fp16 | bf16 (the launcher's --mixed_precision wins when given)
    channels_last: bool = False
    compile: bool = False
    compile_mode: str = "default"  # default | reduce-overhead (CUDA graphs) | max-autotune[-no-cudagraphs]
    recipe: str = "plain"  # plain | fast (GPU: bf16, channels-last, compile, fused Adam; same maths; see fast.py)
    log_every: int = 10
    sample_every: int = 200
    num_probes: int = 8
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    resume: str = "auto"  # auto (latest in the run folder) | never | <path to a checkpoint folder>
    validate_every: int = 0  # cheap metrics on a fixed held-out subset every N steps (0 = off)
    validate_images: int = 32


@dataclass
class TrackingConfig:
    wandb: bool = False
    tensorboard: bool = False
    project: str = "gan-color"
    group: str = ""  # W&B group (experiment); defaults to the config file's stem
    entity: str = ""


@dataclass
class Config:
    name: str = "run"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: NetworkConfig = field(default_factory=lambda: NetworkConfig(name="resnet_9blocks"))
    discriminator: NetworkConfig = field(default_factory=lambda: NetworkConfig(name="patchgan"))
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.train.output_dir) / self.name


# ----------------------------------------------------------------------------------------------------------------
# YAML <-> dataclasses


def _from_dict(cls: type, values: dict[str, Any], path: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{path or 'config'}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in names:
            raise ConfigError(f"unknown config key {where!r}{closest(key, names)}; valid keys here: {names}")
        kwargs[key] = _coerce(hints[key], value, where)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Convert `value` (from YAML or a CLI string) to the field type `tp`, or raise a ConfigError naming `where`."""
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, where)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce(next(a for a in typing.get_args(tp) if a is not type(None)), value, where)
    if origin is dict or tp is dict:
        if isinstance(value, str):
            value = yaml.safe_load(value) or {}
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
        try:
            number = float(value) if tp is float else int(str(value), 0) if isinstance(value, str) else value
        except ValueError:
            raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and (not isinstance(number, int) or isinstance(number, bool)):
            if isinstance(number, float) and number.is_integer():
                return int(number)
            raise ConfigError(f"{where}: expected int, got {value!r}")
        return tp(number)
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        if isinstance(value, bool):  # YAML 1.1 reads unquoted no/off/yes/on as booleans
            if where.endswith("mixed_precision") and value is False:
                return "no"
            raise ConfigError(f"{where}: expected a string, got the boolean {value!r}; quote the value in YAML")
        return "" if value is None else str(value)
    return value


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A config a run wrote (its config.yaml, a checkpoint's meta) with the settings added since then filled in at
    their defaults, which is what that run trained with: comparing it with today's config sees only real changes."""
    defaults = yaml.safe_load(yaml.safe_dump(to_dict(Config())))
    merged = {**defaults, **saved}
    for key, value in defaults.items():
        if isinstance(value, dict) and isinstance(saved.get(key), dict):
            merged[key] = {**value, **saved[key]}
    return merged


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Apply one `a.b.c=value` override to a raw (YAML-level) dict; the value is parsed as YAML, typed later."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} must look like key.subkey=value")
    dotted, text = override.split("=", 1)
    keys = dotted.strip().split(".")
    node, cls = raw, Config
    for i, key in enumerate(keys):
        names = [f.name for f in dataclasses.fields(cls)] if cls else None
        if names is not None and key not in names:
            where = ".".join(keys[: i + 1])
            raise ConfigError(f"unknown config key {where!r}{closest(key, names)}; valid keys here: {names}")
        if i == len(keys) - 1:
            field_type = typing.get_type_hints(cls).get(key) if cls else None
            if field_type is str:  # the text as typed: YAML would read mixed_precision=no as the boolean false
                node[key] = text.strip()
                return
            try:
                node[key] = yaml.safe_load(text) if text.strip() else ""
            except yaml.YAMLError as error:
                problem = _yaml_problem(error)
                raise ConfigError(f"override {override!r}: the value is not valid YAML ({problem})") from None
            return
        field_type = typing.get_type_hints(cls)[key] if cls else None
        cls = field_type if dataclasses.is_dataclass(field_type) else None
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{'.'.join(keys[: i + 1])} is not a section")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a YAML config, apply dotted overrides, type-check every value and validate combinations."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise ConfigError(f"{path}: not a UTF-8 text file ({error.reason} at byte {error.start}); save it as "
                              "UTF-8") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: YAML syntax error {_yaml_problem(error)}") from None
        if raw is None:  # an empty file would silently run every default
            raise ConfigError(f"{path} is empty: a config needs at least one setting (see configs/quickstart.yaml)")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        raw.setdefault("name", path.stem)
        raw.setdefault("tracking", {})
        if isinstance(raw["tracking"], dict):
            raw["tracking"].setdefault("group", path.stem)
    for override in overrides:
        apply_override(raw, override)
    cfg = _from_dict(Config, raw, "")
    validate(cfg)
    return cfg


def _yaml_problem(error: yaml.YAMLError) -> str:
    """'at line L, column C: problem' in one line."""
    mark = getattr(error, "problem_mark", None)
    where = f"at line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{where}{problem}"


def save_config(cfg: Config, path: str | Path) -> None:
    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def validate(cfg: Config) -> None:
    """Reject invalid combinations before anything is built or written."""
    def need(condition: bool, message: str) -> None:
        if not condition:
            raise ConfigError(message)

    need(bool(cfg.name) and "/" not in cfg.name and cfg.name not in (".", ".."), f"name {cfg.name!r} is not a folder")
    need(cfg.data.size >= 16 and cfg.data.size % 4 == 0, f"data.size must be a multiple of 4, >= 16: {cfg.data.size}")
    need(cfg.data.batch_size >= 1, f"data.batch_size must be >= 1: {cfg.data.batch_size}")
    need(cfg.data.num_workers >= 0, f"data.num_workers must be >= 0: {cfg.data.num_workers}")
    need(0 <= cfg.data.holdout < 1, f"data.holdout must lie in [0, 1) (a fraction of data.train): {cfg.data.holdout}")
    need(not cfg.discriminator.init, "discriminator.init is not supported (only model.init: fine-tune a generator)")
    need(cfg.optim.steps >= 1, f"optim.steps must be >= 1: {cfg.optim.steps}")
    need(0 <= cfg.optim.decay_steps <= cfg.optim.steps,
         f"optim.decay_steps ({cfg.optim.decay_steps}) must lie in [0, optim.steps ({cfg.optim.steps})]: the "
         "learning rate decays linearly to 0 over the last decay_steps steps; set both, e.g. optim.steps=60 "
         "optim.decay_steps=30")
    need(cfg.optim.lr > 0, f"optim.lr must be > 0: {cfg.optim.lr}")
    need(0 <= cfg.optim.ema_decay < 1, f"optim.ema_decay must lie in [0, 1) (0 = no EMA; 0.999 averages over about "
         f"the last 1000 steps): {cfg.optim.ema_decay}")
    need(0 <= cfg.optim.beta1 < 1 and 0 <= cfg.optim.beta2 < 1,
         f"optim.beta1/beta2 must lie in [0, 1): {cfg.optim.beta1}, {cfg.optim.beta2}")
    need(cfg.train.mixed_precision in ("no", "fp16", "bf16"), "train.mixed_precision must be one of no, fp16, bf16")
    need(cfg.train.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1")
    need(cfg.train.recipe in RECIPES, f"train.recipe must be one of {', '.join(RECIPES)}: {cfg.train.recipe!r}")
    need(cfg.train.compile_mode in COMPILE_MODES,
         f"train.compile_mode must be one of {', '.join(COMPILE_MODES)}: {cfg.train.compile_mode!r}")
    for key in ("log_every", "sample_every", "checkpoint_every", "num_probes", "validate_images"):
        need(getattr(cfg.train, key) >= 1, f"train.{key} must be >= 1: {getattr(cfg.train, key)}")
    need(cfg.train.validate_every >= 0, f"train.validate_every must be >= 0 (0 = off): {cfg.train.validate_every}")
    need(cfg.data.limit >= 0, f"data.limit must be >= 0 (0 = all images): {cfg.data.limit}")
    need(cfg.data.embedded_length >= 1, f"data.embedded_length must be >= 1: {cfg.data.embedded_length}")
    try:
        objective_cls = OBJECTIVES.get(cfg.objective.name)
        OBJECTIVES.build(cfg.objective.name, **cfg.objective.kwargs)  # checks names and values of its kwargs
        check_colorizer(cfg.model.name, cfg.model.kwargs)
        if getattr(objective_cls, "uses_discriminator", False):
            DISCRIMINATORS.check_kwargs(cfg.discriminator.name, cfg.discriminator.kwargs)
    except (KeyError, ValueError) as error:
        raise ConfigError(str(error).strip('"')) from None
    check = getattr(objective_cls, "check_config", None)
    if check is not None:
        message = check(cfg)
        need(message is None, message or "")
    check_networks_build(cfg, OBJECTIVES.build(cfg.objective.name, **cfg.objective.kwargs),
                         uses_discriminator=getattr(objective_cls, "uses_discriminator", False))


def check_networks_build(cfg: Config, objective: Any, *, uses_discriminator: bool) -> None:
    """Build the networks on the meta device (no memory, no arithmetic) and pass one data.size image through them:
    bad values (ngf=0, ngf=abc) and an architecture that cannot take this size fail here, in words."""
    kwargs = objective.model_kwargs(cfg.model.kwargs)
    signature = build_colorizer_signature(cfg.model.name)
    _check_kwarg_types("model", signature, cfg.model.kwargs)
    default = signature.parameters["pretrained"].default if "pretrained" in signature.parameters else False
    if kwargs.get("pretrained", default) is True:  # its constructor reads weights: checked when the run builds it
        return
    size, what = cfg.data.size, f"model {cfg.model.name!r} with kwargs {cfg.model.kwargs}"
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zero-element tensors: reported below, in words
            networks = [build_colorizer(cfg.model.name, **kwargs).eval()]
            _no_empty_layers(networks[0])
            networks[0](torch.zeros(1, _input_channels(networks[0]), size, size))
            if uses_discriminator:
                what = f"discriminator {cfg.discriminator.name!r} with kwargs {cfg.discriminator.kwargs}"
                networks.append(build_discriminator(cfg.discriminator.name, **cfg.discriminator.kwargs).eval())
                _no_empty_layers(networks[1])
                networks[1](torch.zeros(1, 1, size, size), torch.zeros(1, 2, size, size))  # (gray_l, ab)
    except NotImplementedError:  # an operation without a meta kernel: the first real step checks it instead
        return
    except (TypeError, ValueError, RuntimeError, ZeroDivisionError, IndexError, AttributeError) as error:
        reason = " ".join(str(error).split())[:300] or type(error).__name__
        raise ConfigError(f"{what} cannot work on data.size={size} px images: {reason}") from None


def build_colorizer_signature(name: str) -> inspect.Signature:
    return inspect.signature(colorizer_registry(name).get(name))


def _check_kwarg_types(section: str, signature: inspect.Signature, kwargs: dict[str, Any]) -> None:
    """A number-valued constructor argument given a string (model.kwargs.ngf=abc) is named with its default."""
    for key, value in kwargs.items():
        param = signature.parameters.get(key)
        default = None if param is None else param.default
        if isinstance(default, (int, float)) and not isinstance(default, bool) and isinstance(value, str):
            raise ConfigError(f"{section}.kwargs.{key}: expected a number (default {default}), got {value!r}")


def _no_empty_layers(network: Any) -> None:
    if any(p.numel() == 0 for p in network.parameters()):
        raise ValueError("some layers would have 0 channels (a width such as ngf/ndf must be >= 1)")


def _input_channels(network: Any) -> int:
    first = next((m for m in network.modules() if isinstance(m, torch.nn.Conv2d)), None)
    return first.in_channels if first is not None else 1
