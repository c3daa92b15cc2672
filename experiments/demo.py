"""``gmg demo``: for now, pictures of the training setting and one test setting."""

from __future__ import annotations

from pathlib import Path

import torch


def demo(out_dir: Path | str = "runs/demo", device: torch.device | str = "cpu") -> Path:
    """Render a few training and test levels into ``out_dir``; returns ``out_dir``."""
    from experiments.pictures import render_pictures

    out = Path(out_dir)
    render_pictures(out, ("yellow_line",), "black", n_levels=16, device=device)
    render_pictures(out, ("yellow_line",), "textured", n_levels=16, device=device)
    render_pictures(out, ("red_line", "yellow_gem"), "black", n_levels=16, device=device)
    return out
