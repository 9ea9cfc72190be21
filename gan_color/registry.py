"""Small name -> constructor registries: generators, discriminators, baseline networks, objectives, losses, datasets,
metrics.

Plugins (the `baselines` package) register themselves through the `gan_color.plugins` entry point, loaded lazily on
the first lookup miss, so `gan_color` never imports them directly.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

_PLUGINS_LOADED = False


def load_plugins() -> None:
    """Import every package registered under the `gan_color.plugins` entry point (once)."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for entry_point in metadata.entry_points(group="gan_color.plugins"):
        entry_point.load()


def closest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean X?)' for the closest of `choices`, or '' when nothing is close."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


class Registry:
    """A named collection of constructors; `@REG.register("name")` adds one, `REG.build(name, **kwargs)` calls it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries and self._entries[name] is not fn:
                raise KeyError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries:
            load_plugins()
        if name not in self._entries:
            raise KeyError(f"unknown {self.kind} {name!r}{closest(name, self.names())}; choose from {self.names()}")
        return self._entries[name]

    def build(self, name: str, **kwargs: Any) -> Any:
        self.check_kwargs(name, kwargs)
        return self.get(name)(**kwargs)

    def check_kwargs(self, name: str, kwargs: dict[str, Any]) -> None:
        """Reject keyword arguments the constructor does not take, naming the closest valid one."""
        params = inspect.signature(self.get(name)).parameters
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return
        valid = [n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        for key in kwargs:
            if key not in valid:
                hint = closest(key, valid)
                raise ValueError(f"{self.kind} {name!r} takes no argument {key!r}{hint}; valid: {valid}")

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
OBJECTIVES = Registry("objective")
LOSSES = Registry("loss")
DATASETS = Registry("dataset")
METRICS = Registry("metric")
BASELINE_NETWORKS = Registry("baseline network")
