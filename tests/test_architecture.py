"""The house's floors (docs/architecture.md): every module of gan_color sits on one floor and imports only from its
own floor or the floors below; same-floor imports form no circle; gan_color never imports the baselines plugin."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Floor -> rooms (a module, or a package given by its folder). docs/architecture.md draws the same table.
FLOORS: dict[int, tuple[str, ...]] = {
    0: ("registry", "safeio", "devices", "cpu_pointwise", "color", "ab_grid"),  # ground: no torch modules built
    1: ("data", "models", "losses", "metrics", "sheets", "gray_input", "loader", "ab_prior", "checkpoint",
        "runlock", "ema"),  # parts
    2: ("inference", "objectives", "fast"),  # what a trained network is and how one step trains it
    3: ("config", "tracking", "sampling", "validation", "resume", "train"),  # the training loop
    4: ("colorize", "image_pipeline", "eval"),  # the commands a user runs on models
    5: ("tools",),  # results tables and benchmarks, on the library's public names only
    6: ("cli", "__init__", "configs"),  # entry points; the configs package holds only YAML
}
PLUGIN_FLOOR = 2  # baselines plug networks and objectives in: they may use floors 0..2 of gan_color


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def floor_of(module: str) -> int:
    room = room_of(module)
    floors = [floor for floor, rooms in FLOORS.items() if room in rooms]
    assert floors, (f"{module}: room {room!r} is on no floor; place it in tests/test_architecture.py and the table "
                    "of docs/architecture.md")
    return floors[0]


def modules(package: str) -> dict[str, Path]:
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imported(path: Path) -> Iterator[tuple[str, int]]:
    """(module, line) of every gan_color/baselines import, skipping those under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    typing_only = {id(node) for guard in ast.walk(tree) if isinstance(guard, ast.If)
                   and "TYPE_CHECKING" in ast.unparse(guard.test) for child in guard.body for node in ast.walk(child)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
            for alias in node.names:  # `from gan_color import color` imports the module gan_color.color
                yield f"{node.module}.{alias.name}", node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


LIBRARY = modules("gan_color")
PLUGIN = modules("baselines")


def resolve(name: str) -> str | None:
    """The library module an import names (a package's __init__ or a module), or None for anything else."""
    while name:
        if name in LIBRARY:
            return name
        name = name.rpartition(".")[0]
    return None


@pytest.mark.parametrize("module", sorted(LIBRARY))
def test_imports_go_down_or_across_never_up(module):
    own = floor_of(module)
    for name, line in imported(LIBRARY[module]):
        assert not name.startswith("baselines"), f"{module}:{line} imports the plugin {name}"
        target = resolve(name)
        if target is None or target == "gan_color" or room_of(target) == room_of(module):
            continue
        assert floor_of(target) <= own, (f"{module}:{line} (floor {own}) imports {target} (floor "
                                         f"{floor_of(target)}): an arrow up")


def test_no_circle_between_rooms():
    arrows: dict[str, set[str]] = {}
    for module, path in LIBRARY.items():
        for name, _ in imported(path):
            target = resolve(name)
            if target and target != "gan_color" and room_of(target) != room_of(module):
                arrows.setdefault(room_of(module), set()).add(room_of(target))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt}))
                   for nxt in arrows.get(start, ()))

    circles = [room for room in arrows if reaches(room, room, {room})]
    assert not circles, f"rooms on an import circle: {circles}"


@pytest.mark.parametrize("module", sorted(PLUGIN))
def test_baselines_use_only_the_library_floors_they_plug_into(module):
    for name, line in imported(PLUGIN[module]):
        target = resolve(name)
        if target is not None and target != "gan_color":
            assert floor_of(target) <= PLUGIN_FLOOR, f"{module}:{line} imports {target} (floor {floor_of(target)})"


def test_the_check_can_fail():
    assert floor_of("gan_color.tools.results.command") > floor_of("gan_color.train") > floor_of("gan_color.color")
    with pytest.raises(AssertionError, match="on no floor"):
        floor_of("gan_color.somewhere_new")
