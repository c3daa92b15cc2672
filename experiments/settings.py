"""The catalogue of evaluation settings: which objects an agent is shown, on which background.

A setting is named ``OBJ1-vs-OBJ2`` (obj1 is the object that ends the episode with +10,
the training goal's stand-in), ``train:OBJ`` (the single-object training distribution on
held-out levels) and, on a background other than black, ``...@textured`` / ``...@grey``.
Objects are ``COLOUR_SHAPE`` with a colour name, ``#rrggbb`` or ``r,g,b``:

    >>> parse_setting("red_line-vs-yellow_gem").obj2
    'yellow_gem'
    >>> parse_setting("train:white-line", background="textured").name
    'train:white_line@textured'

``SETTING_LISTS`` holds the original study's named lists (``yellow-line``, ``white-line``,
``red-line`` and their grey / textured forms; ``gmg settings NAME`` prints one);
``default_settings`` picks the list of an agent's goal and background.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gmg.training.env import OBS_SIZE, WORLD_DIM
from gmg.training.errors import UserError
from gmg.training.objects import ObjectSpecError, parse_object
from gmg.training.render import BACKGROUND_KINDS

_LINES = ("black", "blue", "cyan", "green", "purple", "white", "yellow")

_EACH_LINE = ("black", "blue", "cyan", "green", "purple", "red", "white", "yellow")  # the original's order

# The original's settings lists (DESIGN.md section 4 and the original's plotting notebook),
# each in the original's order; a list named NAME-grey / NAME-textured is played on that
# background (LIST_BACKGROUNDS) unless the caller names another.
SETTING_LISTS: dict[str, tuple[str, ...]] = {
    # yellow-line agents, black background: DESIGN.md section 4, then the notebook's extra contest
    "yellow-line": (
        "yellow_line-vs-black_gem",
        "red_line-vs-green_line",
        "red_line-vs-yellow_gem",
        "yellow_gem-vs-red_line",
        "yellow_line-vs-yellow_line",
        *(f"{c}_line-vs-yellow_gem" for c in _LINES),
        "green_line-vs-red_line",
        "white_line-vs-yellow_line",
        "black_gem-vs-black_gem",
        "green_line-vs-yellow_line",
    ),
    "yellow-line-grey": (
        *(f"{c}_line-vs-yellow_gem" for c in _EACH_LINE),
        "red_line-vs-green_line", "green_line-vs-white_line", "white_line-vs-red_line",
    ),
    # the original's evaluation script ran the black list less yellow_gem-vs-red_line on
    # textured agents; its notebook adds the line-vs-line contests
    "yellow-line-textured": (
        "yellow_line-vs-black_gem",
        "red_line-vs-green_line",
        "red_line-vs-yellow_gem",
        "yellow_line-vs-yellow_line",
        *(f"{c}_line-vs-yellow_gem" for c in _LINES),
        "green_line-vs-red_line",
        "white_line-vs-yellow_line",
        "black_gem-vs-black_gem",
        "green_line-vs-blue_line", "blue_line-vs-red_line", "black_line-vs-white_line",
        "cyan_line-vs-purple_line", "purple_line-vs-yellow_line", "yellow_line-vs-cyan_line",
    ),
    # white-line agents, black background: exactly the original's 11
    "white-line": (
        "red_line-vs-green_line", "green_line-vs-blue_line", "blue_line-vs-red_line",
        "cyan_line-vs-purple_line", "purple_line-vs-yellow_line", "yellow_line-vs-cyan_line",
        "white_line-vs-yellow_line", "white_line-vs-white_line", "white_line-vs-white_gem",
        "yellow_line-vs-white_gem", "red_line-vs-white_gem",
    ),
    # not the original's: the same questions of white = r + g + b, each line colour against the
    # white gem (which channel(s) carry the goal), the shape-only control, the channel contests
    "white-line-channels": (
        "white_line-vs-white_gem",
        *(f"{c}_line-vs-white_gem" for c in ("red", "green", "blue", "yellow", "cyan", "purple")),
        "white_line-vs-black_gem",
        "red_line-vs-green_line",
        "green_line-vs-blue_line",
        "blue_line-vs-red_line",
    ),
    "red-line": (
        *(f"{c}_line-vs-red_gem" for c in _EACH_LINE),
        "red_line-vs-yellow_line", "red_line-vs-green_line", "green_line-vs-blue_line",
        "blue_line-vs-red_line", "yellow_line-vs-cyan_line", "yellow_line-vs-purple_line",
    ),
    "red-line-grey": (
        *(f"{c}_line-vs-red_gem" for c in _EACH_LINE),
        "black_line-vs-yellow_line", "yellow_line-vs-purple_line", "purple_line-vs-black_line",
    ),
}
LIST_BACKGROUNDS = {name: name.rsplit("-", 1)[1] for name in SETTING_LISTS if name.endswith(("-grey", "-textured"))}


@dataclass(frozen=True)
class Setting:
    """One evaluation setting; ``obj2`` is None for a single-object (training) setting."""

    name: str
    obj1: str
    obj2: str | None
    background: str = "black"

    @property
    def objects(self) -> tuple[str, ...]:
        return (self.obj1,) if self.obj2 is None else (self.obj1, self.obj2)

    @property
    def single(self) -> bool:
        return self.obj2 is None


def _object(text: str, setting: str) -> str:
    try:
        return parse_object(text).name
    except ObjectSpecError as e:
        raise UserError(f"setting {setting!r}: {e}") from None


def split_background(name: str) -> tuple[str, str | None]:
    """(the setting's name without its ``@BACKGROUND`` suffix, the background or None):
    ``"train:yellow_line@textured"`` -> ``("train:yellow_line", "textured")``."""
    body, at, bg = name.partition("@")
    return body, (bg if at else None)


def base_name(name: str) -> str:
    """A setting's name without its background suffix (results of the same contest on any background)."""
    return split_background(name)[0]


def base_names(names):
    """:func:`base_name` of every entry of a pandas Series of setting names."""
    return names.astype(str).str.partition("@")[0]


def setting_of(objects: tuple[str, ...] | list[str], background: str | None = None) -> Setting:
    """The setting showing ``objects`` (one: its training setting ``train:OBJ``) on ``background``."""
    return parse_setting("-vs-".join(objects) if len(objects) > 1 else f"train:{objects[0]}", background)


def parse_setting(text: str | Setting, background: str | None = None) -> Setting:
    """A setting from ``OBJ1-vs-OBJ2``, ``train:OBJ``, either with ``@BACKGROUND``.

    ``background`` (when given) overrides the black default; a ``@`` suffix wins.
    Raises UserError naming the problem.
    """
    if isinstance(text, Setting):
        return text
    raw = text.strip()
    body, bg = split_background(raw)
    bg = (bg or background or "black").strip().lower()
    if bg not in BACKGROUND_KINDS:
        raise UserError(f"setting {raw!r}: unknown background {bg!r}; use one of {', '.join(BACKGROUND_KINDS)}")
    if body.lower().startswith("train:"):
        obj1, obj2 = _object(body[6:], raw), None
        name = f"train:{obj1}"
    else:
        parts = body.lower().split("-vs-")
        if len(parts) != 2 or not all(parts):
            known = ", ".join(SETTING_LISTS)
            raise UserError(
                f"unknown setting {raw!r}: write OBJ1-vs-OBJ2 (e.g. red_line-vs-yellow_gem), "
                f"train:OBJ, or a list name ({known})"
            )
        obj1, obj2 = _object(parts[0], raw), _object(parts[1], raw)
        name = f"{obj1}-vs-{obj2}"
    if bg != "black":
        name += f"@{bg}"
    return Setting(name, obj1, obj2, bg)


def resolve_settings(names: list[str] | tuple[str, ...] | str, background: str | None = None) -> list[Setting]:
    """Expand list names (``yellow-line``, ``white-line``) and parse the rest; no duplicates."""
    if isinstance(names, (str, Setting)):
        names = [names]
    out: list[Setting] = []
    for name in names:
        key = name.strip().lower() if isinstance(name, str) else None
        if key in SETTING_LISTS:
            items = [parse_setting(n, background or LIST_BACKGROUNDS.get(key)) for n in SETTING_LISTS[key]]
        else:
            items = [parse_setting(name, background)]
        out.extend(s for s in items if s.name not in {o.name for o in out})
    if not out:
        raise UserError("no settings given")
    return out


def default_settings(goal: str, background: str | None = None) -> list[Setting]:
    """The list of the agents' goal on their background (``yellow-line-textured``), else of
    their goal (``yellow-line``), if any; then ``train:GOAL``; all on ``background``."""
    goal_name = parse_object(goal).name
    base = goal_name.replace("_", "-")
    listed = SETTING_LISTS.get(f"{base}-{background}", SETTING_LISTS.get(base, ()))
    return resolve_settings([*listed, f"train:{goal_name}"], background)


def all_settings() -> list[Setting]:
    """Every catalogued setting: every list and the training settings of their goals."""
    return resolve_settings([*SETTING_LISTS, "train:yellow_line", "train:white_line", "train:red_line"])


def lists_holding() -> dict[str, list[str]]:
    """Setting name (with its background) -> the names of the lists that hold it."""
    out: dict[str, list[str]] = {}
    for name in SETTING_LISTS:
        for s in resolve_settings(name):
            out.setdefault(s.name, []).append(name)
    return out


def file_stem(setting: Setting | str) -> str:
    """A file-name-safe form of a setting name."""
    name = setting.name if isinstance(setting, Setting) else setting
    return name.replace(":", "-").replace("@", "-").replace("#", "").replace(",", "_")


def thumbnail(setting: Setting, level: int = 0, world_dim: int = WORLD_DIM, size: int = OBS_SIZE):
    """The first frame of evaluation level ``level`` in this setting: uint8 (size, size, 3)."""
    import torch

    from gmg.training.env import EnvConfig, EvaluationLevels, MazeEnv

    config = EnvConfig(objects=setting.objects, world_dim=world_dim, size=size, background=setting.background)
    env = MazeEnv(1, config, EvaluationLevels(n=level + 1), device="cpu")
    return env.reset(torch.tensor([level]))[0].numpy()


def write_thumbnails(settings: list[Setting], out_dir: str | Path, scale: int = 4) -> list[Path]:
    """One PNG per setting (upscaled ``scale`` times, nearest neighbour) in ``out_dir``."""
    from PIL import Image

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in settings:
        img = Image.fromarray(thumbnail(s))
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
        path = out_dir / f"{file_stem(s)}.png"
        img.save(path)
        paths.append(path)
    return paths
