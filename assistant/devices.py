"""Where models run: the device a setting names, and how many CPU cores this process may use."""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

from assistant.errors import ConfigError, ModelError


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers narrow), at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def choose_device(setting: str) -> str:
    """`auto` means CUDA when torch sees a GPU, else the CPU; `cpu`, `cuda` and `cuda:N` are
    checked and returned as given."""
    if setting == "cpu" or (setting == "auto" and not _may_have_cuda()):
        return "cpu"
    import torch

    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cpu":
        return setting
    if re.fullmatch(r"cuda(:\d+)?", setting) is None:
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, not {setting!r}")
    if not torch.cuda.is_available():
        raise ModelError(f"device {setting!r} was asked for but torch sees no CUDA GPU")
    return setting


def _may_have_cuda() -> bool:
    """False where no GPU can be seen without asking torch: Linux without NVIDIA's driver (nor
    WSL's GPU device). Importing torch only to learn that takes a second or more, which `search`
    and `info` would otherwise pay on every run. Elsewhere, or once torch is loaded, ask it."""
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(path) for path in ("/proc/driver/nvidia/version", "/dev/dxg"))


def cpu_identity() -> str:
    """The CPU's model and instruction-set flags (Linux), else what platform knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    wanted = ("model name", "flags")
    return "\n".join(sorted({line for line in lines if line.startswith(wanted)}))
