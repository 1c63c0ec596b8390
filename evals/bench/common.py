"""What every benchmark records about the machine it ran on (imported by the scripts beside it)."""

from __future__ import annotations

import json
import os
import platform
import re
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~<>])/[^\s\"',]+")


def portable_path(path: str) -> str:
    """A path as it can be committed: relative inside the repository, `<site-packages>/...` for
    installed files, else `<...>/` and its last two parts (this machine's folders mean nothing
    elsewhere)."""
    resolved = Path(path)
    for base, label in (
        (ROOT, ""),
        (Path(sysconfig.get_paths()["purelib"]), "<site-packages>/"),
        (Path.home(), "~/"),
    ):
        if resolved.is_relative_to(base):
            return label + str(resolved.relative_to(base))
    return "<...>/" + "/".join(resolved.parts[-2:])


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write a benchmark's JSON with every absolute path in it made portable."""
    text = json.dumps(results, indent=2) + "\n"
    text = _ABSOLUTE_PATH.sub(lambda match: portable_path(match.group(0)), text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def cpu_class(flags: Sequence[str]) -> str:
    """The class `evals/README.md` keeps a table for: what decides which kernels are fast."""
    if "avx512_bf16" in flags and "avx512_vnni" in flags:
        return "AVX-512 with BF16 and VNNI (e.g. AMD Zen 4, Intel Sapphire/Emerald Rapids)"
    if "avx512f" in flags:
        return "AVX-512 without BF16 or VNNI"
    if "avx2" in flags and "fma" in flags:
        return "AVX2 and FMA, no AVX-512 (e.g. AMD Zen 3)"
    return (
        "other ("
        + (" ".join(f for f in flags if f.startswith(("asimd", "sve", "neon"))) or "no AVX2")
        + ")"
    )


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
        "cpu_class": cpu_class(flags.split()),
        "avx2": "avx2" in flags.split(),
        "fma": "fma" in flags.split(),
        "avx512f": "avx512f" in flags.split(),
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


def result_header(benchmark: str) -> dict[str, Any]:
    """What every bench JSON starts with: its name, the command, the machine, the date and the
    load average when it started."""
    import sys
    import time

    return {
        "benchmark": benchmark,
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_info(),
        "date": time.strftime("%Y-%m-%d"),
        "load_average_start": os.getloadavg(),
    }
