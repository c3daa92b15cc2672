"""The one plotting helper module: matplotlib on the Agg backend (files only, never a display),
saving a figure, and the colours every plot shares."""

from __future__ import annotations

from pathlib import Path

CHANNEL_COLOURS = {"r": "#d62728", "g": "#2ca02c", "b": "#1f77b4"}


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend, chosen here once for the whole package."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (creating its folder), close it, return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    return path
