"""Goal objects: a shape drawn in one pure colour, no anti-aliasing.

A shape is a boolean mask defined on the 13x13 cell of the original 64x64, 5x5 maze
(equal to ``shared/reference`` pixel for pixel) and resampled nearest-neighbour to other
cell sizes. New shapes are one entry in ``SHAPES``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gmg.training.errors import UserError

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "green": (0, 255, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "cyan": (0, 255, 255),
    "purple": (255, 0, 255),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}
INVISIBLE = "invisible"
BASE_CELL = 13


def _line_mask() -> np.ndarray:
    r, c = np.mgrid[0:BASE_CELL, 0:BASE_CELL]
    mask = np.abs(r - c) <= 1
    mask[0, 0] = False  # the original asset's top-left corner pixel is empty
    return mask


def _gem_mask() -> np.ndarray:
    mask = np.zeros((BASE_CELL, BASE_CELL), dtype=bool)
    mask[4, 4:9] = True
    mask[5:7, 3:10] = True
    mask[7, 4:9] = True
    mask[8, 6] = True
    return mask


SHAPES: dict[str, np.ndarray] = {"line": _line_mask(), "gem": _gem_mask()}


class ObjectSpecError(UserError, ValueError):
    """An object name that names no known shape or colour."""


@dataclass(frozen=True)
class ObjectSpec:
    """One goal object: ``shape`` in SHAPES and an RGB colour, or invisible."""

    shape: str
    rgb: tuple[int, int, int] | None  # None = invisible (nothing drawn)

    @property
    def name(self) -> str:
        if self.rgb is None:
            colour = INVISIBLE
        else:
            named = [k for k, v in COLOURS.items() if v == self.rgb]
            colour = named[0] if named else "#{:02x}{:02x}{:02x}".format(*self.rgb)
        return f"{colour}_{self.shape}"

    def mask(self, height: int, width: int) -> np.ndarray:
        """Boolean mask of shape (height, width) for a cell of that size."""
        base = SHAPES[self.shape]
        if self.rgb is None:
            return np.zeros((height, width), dtype=bool)
        rows = (np.arange(height) * BASE_CELL) // height
        cols = (np.arange(width) * BASE_CELL) // width
        return base[np.ix_(rows, cols)]


def parse_colour(text: str) -> tuple[int, int, int] | None:
    """A colour name, ``#rrggbb`` or ``r,g,b``; None for ``invisible``."""
    t = text.strip().lower()
    if t == INVISIBLE:
        return None
    if t in COLOURS:
        return COLOURS[t]
    try:
        if t.startswith("#") and len(t) == 7:
            return tuple(int(t[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]
        parts = [int(p) for p in t.replace("(", "").replace(")", "").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 3 and all(0 <= p <= 255 for p in parts):
        return tuple(parts)  # type: ignore[return-value]
    allowed = ", ".join([*COLOURS, INVISIBLE])
    raise ObjectSpecError(
        f"unknown colour {text!r}: use one of {allowed}, '#rrggbb' or 'r,g,b' (0-255)"
    )


def parse_object(text: str | ObjectSpec) -> ObjectSpec:
    """Parse ``yellow_line``, ``yellow-line``, ``255,0,0_gem`` or ``#ff0000_gem``."""
    if isinstance(text, ObjectSpec):
        return text
    t = text.strip().lower().replace("-", "_")
    if t.endswith("_line_diag"):
        t = t[: -len("_diag")]
    colour, _, shape = t.rpartition("_")
    if shape not in SHAPES:
        raise ObjectSpecError(
            f"unknown object {text!r}: write COLOUR_SHAPE with shape one of "
            f"{', '.join(SHAPES)} (e.g. yellow_line, red_gem)"
        )
    if not colour:
        raise ObjectSpecError(f"object {text!r} has no colour: write e.g. yellow_{shape}")
    return ObjectSpec(shape, parse_colour(colour))
