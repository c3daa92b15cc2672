"""Where and how a process computes: the device, CPU threads, cuDNN's search, seeding, and a
description of the machine for every measured figure."""

from __future__ import annotations

import os
import platform
import random

import numpy as np
import torch

from gmg.training.config import ConfigError, RunSettings


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; the one place seeds are set."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
    return device


def apply_run_settings(run: RunSettings, device: torch.device) -> None:
    """The process-wide settings a run asks for: CPU threads, cuDNN's algorithm search."""
    if run.threads:
        torch.set_num_threads(run.threads)
    if device.type == "cuda":
        # the fastest algorithm per shape, timed once; GPU runs are only float-close anyway
        torch.backends.cudnn.benchmark = run.cudnn_benchmark


def machine() -> dict:
    """What the numbers were measured on: CPU, core count, GPU, library versions."""
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    if hasattr(os, "getloadavg"):
        # other processes share the cores: record how busy the machine was
        info["load_avg_1min"] = round(os.getloadavg()[0], 2)
    try:
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        if names:
            info["cpu"] = names[0]
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
