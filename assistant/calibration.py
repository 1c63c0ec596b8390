"""Choosing a fast path by measuring it on this CPU, and remembering what was measured.

A kernel that is fast on one CPU can be a cliff on another: torch's 8-bit matrix product uses
AVX512-VNNI where the CPU has it and, on a CPU without it, falls back to a plain reference loop far
slower than float32 (evals/README.md, one table per CPU class). So no optimized path is enabled
because a function exists. Each choice (`kernel_plan` for the torch engine's products, attention
and threads; `loader` for the engine itself) times its candidates on the model's real shapes, keeps
the fastest, and falls back to the plain path unless another candidate beats it by a clear margin.

Measurements are cached in one JSON file in the models folder, keyed by everything that changes
them: the CPU's model and instruction-set flags, the versions of torch, transformers and llama.cpp,
the model's shapes and this module's `VERSION`. A new CPU, an upgrade or a new model measures
again; otherwise a load reads the choice in microseconds. `assistant info` shows the choices and
the numbers behind them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import math
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from assistant.devices import cpu_identity
from assistant.files import write_text_atomically

# Bump when what is measured, or how, changes: every cached choice is then measured again.
VERSION = 4
FILE_NAME = "calibration.json"
# A candidate replaces the plain path only when it is at least this much faster: timings on a
# shared machine wobble by a few percent, and the plain path is the safe one.
MARGIN = 0.05
_PACKAGES = ("torch", "transformers", "xllamacpp", "openvino")


@dataclass(frozen=True)
class Choice:
    """One decision: what runs, the seconds each candidate took, and why it was chosen."""

    name: str  # what is decided, e.g. "prompt_products"
    chosen: str
    seconds: dict[str, float] = field(default_factory=dict)  # inf: not measured (see `reason`)
    reason: str = "measured"  # "measured", "forced by ASSISTANT_...", or why it had no choice

    def describe(self) -> str:
        """One line for `assistant info`: the choice, then each candidate's time."""
        timings = ", ".join(
            f"{candidate} {_milliseconds(value)}" for candidate, value in self.seconds.items()
        )
        details = f"{self.reason}: {timings}" if timings else self.reason
        return f"{self.chosen} ({details})"

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "seconds": {
                key: (None if math.isinf(value) else value) for key, value in self.seconds.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Choice:
        seconds = {
            str(key): (math.inf if value is None else float(value))
            for key, value in dict(data.get("seconds", {})).items()
        }
        return cls(str(data["name"]), str(data["chosen"]), seconds, str(data.get("reason", "")))


def _milliseconds(seconds: float) -> str:
    if math.isinf(seconds):
        return "skipped"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def fastest(seconds: Mapping[str, float], plain: str, margin: float = MARGIN) -> str:
    """The candidate that took the least time, or `plain` unless that candidate beats it by more
    than `margin` (a share of the plain path's time). `plain` must be among the candidates."""
    if plain not in seconds:
        raise ValueError(f"the plain candidate {plain!r} was not measured")
    best = min(seconds, key=lambda candidate: seconds[candidate])
    if best != plain and seconds[best] < seconds[plain] * (1.0 - margin):
        return best
    return plain


def best_time(run: Callable[[], object], repeats: int = 3, warmups: int = 1) -> float:
    """The least wall-clock seconds of `repeats` calls after `warmups` untimed ones (the least
    disturbed run is the one that says what the code costs)."""
    for _ in range(warmups):
        run()
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def machine_signature() -> dict[str, str]:
    """What a measurement depends on besides the model: CPU model and flags, library versions."""
    signature = {"cpu": cpu_identity(), "machine": platform.machine(), "version": str(VERSION)}
    for package in _PACKAGES:
        try:
            signature[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            signature[package] = "-"
    return signature


def cpu_summary() -> str:
    """The CPU's model and the instruction sets that decide the kernels, for display."""
    text = cpu_identity()
    model = next(
        (line.split(":", 1)[1].strip() for line in text.splitlines() if "model name" in line),
        platform.processor() or platform.machine(),
    )
    flags = set(text.split())
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "asimd")
    present = [flag for flag in wanted if flag in flags]
    return f"{model} ({', '.join(present) or 'no vector extensions found'})"


def key_of(kind: str, **parts: object) -> str:
    """A cache key for one kind of measurement on this machine with these parts (model shapes,
    file identity...)."""
    payload = json.dumps(
        {"kind": kind, **machine_signature(), **parts}, sort_keys=True, default=str
    )
    return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:20]}"


class CalibrationCache:
    """The measured choices of one models folder: `{key: {name: Choice}}` in one JSON file.

    A missing or damaged file is an empty cache (everything is measured again); a folder that
    cannot be written keeps the choices for this process only.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE_NAME

    def get(self, key: str) -> dict[str, Choice] | None:
        entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            return {name: Choice.from_dict(value) for name, value in entry.items()}
        except (KeyError, TypeError, ValueError):
            return None

    def put(self, key: str, choices: Mapping[str, Choice]) -> None:
        entries = self._read()
        entries[key] = {name: choice.as_dict() for name, choice in choices.items()}
        with contextlib.suppress(OSError):
            write_text_atomically(self.path, json.dumps(entries, indent=2) + "\n")

    def clear(self) -> int:
        """Forget every measurement of this folder (they are taken again at the next load);
        returns how many entries there were."""
        count = len(self._read())
        self.path.unlink(missing_ok=True)
        return count

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}
