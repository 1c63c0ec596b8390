"""What every benchmark records about the machine it ran on (imported by the scripts beside it)."""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def machine_info(packages: Sequence[str] = ("torch", "transformers")) -> dict[str, Any]:
    """CPU model and the flags that matter here, cores, package versions, thread settings, and
    the load average at the start (a shared machine's load says how far to trust the times)."""
    cpu_model, flags = "", ""
    if Path("/proc/cpuinfo").exists():
        text = Path("/proc/cpuinfo").read_text()
        cpu_model = next(iter(re.findall(r"model name\s*:\s*(.*)", text)), "")
        flags = next(iter(re.findall(r"flags\s*:\s*(.*)", text)), "")
    versions = {}
    for package in packages:
        try:
            versions[package] = str(__import__(package).__version__)
        except ImportError:
            versions[package] = "not installed"
    info: dict[str, Any] = {
        "cpu": cpu_model,
        "cores": len(os.sched_getaffinity(0)),
        "avx512_bf16": "avx512_bf16" in flags.split(),
        "avx512_vnni": "avx512_vnni" in flags.split(),
        **versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }
    if "torch" in packages:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    info["load_average_start"] = os.getloadavg()
    return info
