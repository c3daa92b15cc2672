"""The catalogue of evaluation settings: which objects an agent is shown, on which background.

A setting is named ``OBJ1-vs-OBJ2`` (obj1 is the object that ends the episode with +10,
the training goal's stand-in), ``train:OBJ`` (the single-object training distribution on
held-out levels) and, on a background other than black, ``...@textured`` / ``...@grey``.
Objects are ``COLOUR_SHAPE`` with a colour name, ``#rrggbb`` or ``r,g,b``:

    >>> parse_setting("red_line-vs-yellow_gem").obj2
    'yellow_gem'
    >>> parse_setting("train:white-line", background="textured").name
    'train:white_line@textured'

``SETTING_LISTS`` holds the named lists of DESIGN.md section 4 (``yellow-line``: the 15
settings run on yellow-line agents; ``white-line``: 11 settings for white-line agents).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from experiments.errors import GmgError
from training.objects import ObjectSpecError, parse_object
from training.render import BACKGROUND_KINDS

_LINES = ("black", "blue", "cyan", "green", "purple", "white", "yellow")

SETTING_LISTS: dict[str, tuple[str, ...]] = {
    # DESIGN.md section 4, in its order
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
    ),
    # the original does not list its 11; ours ask the same questions of white = r + g + b:
    # shape vs colour with each line colour against the white gem (which channel(s) carry
    # the goal), the shape-only control, and the three pairwise channel contests
    "white-line": (
        "white_line-vs-white_gem",
        *(f"{c}_line-vs-white_gem" for c in ("red", "green", "blue", "yellow", "cyan", "purple")),
        "white_line-vs-black_gem",
        "red_line-vs-green_line",
        "green_line-vs-blue_line",
        "blue_line-vs-red_line",
    ),
}


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
        raise GmgError(f"setting {setting!r}: {e}") from None


def parse_setting(text: str | Setting, background: str | None = None) -> Setting:
    """A setting from ``OBJ1-vs-OBJ2``, ``train:OBJ``, either with ``@BACKGROUND``.

    ``background`` (when given) overrides the black default; a ``@`` suffix wins.
    Raises GmgError naming the problem.
    """
    if isinstance(text, Setting):
        return text
    raw = text.strip()
    body, _, bg = raw.partition("@")
    bg = (bg or background or "black").strip().lower()
    if bg not in BACKGROUND_KINDS:
        raise GmgError(f"setting {raw!r}: unknown background {bg!r}; use one of {', '.join(BACKGROUND_KINDS)}")
    if body.lower().startswith("train:"):
        obj1, obj2 = _object(body[6:], raw), None
        name = f"train:{obj1}"
    else:
        parts = body.lower().split("-vs-")
        if len(parts) != 2 or not all(parts):
            known = ", ".join(SETTING_LISTS)
            raise GmgError(
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
        if isinstance(name, str) and name.strip().lower() in SETTING_LISTS:
            items = [parse_setting(n, background) for n in SETTING_LISTS[name.strip().lower()]]
        else:
            items = [parse_setting(name, background)]
        out.extend(s for s in items if s.name not in {o.name for o in out})
    if not out:
        raise GmgError("no settings given")
    return out


def default_settings(goal: str, background: str | None = None) -> list[Setting]:
    """The list named after the agents' goal (if any), then ``train:GOAL``."""
    goal_name = parse_object(goal).name
    listed = SETTING_LISTS.get(goal_name.replace("_", "-"), ())
    return resolve_settings([*listed, f"train:{goal_name}"], background)


def all_settings() -> list[Setting]:
    """Every catalogued setting: both lists and the two training settings."""
    return resolve_settings([*SETTING_LISTS, "train:yellow_line", "train:white_line"])


def file_stem(setting: Setting | str) -> str:
    """A file-name-safe form of a setting name."""
    name = setting.name if isinstance(setting, Setting) else setting
    return name.replace(":", "-").replace("@", "-").replace("#", "").replace(",", "_")


def thumbnail(setting: Setting, level: int = 0, world_dim: int = 5, size: int = 64):
    """The first frame of evaluation level ``level`` in this setting: uint8 (size, size, 3)."""
    import torch

    from training.env import EnvConfig, EvaluationLevels, MazeEnv

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
