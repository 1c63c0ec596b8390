"""Small C kernels, compiled on first use with the machine's C compiler and called through ctypes.

A kernel is one C file under `assistant/llm/kernels/` (with the headers there it includes). It is
built once per source, compiler and CPU (`-O3 -march=native`: it may use every instruction this CPU
has) into `kernels/` in the model cache, and loaded from there afterwards. Without a compiler, or
when the build fails, `load` returns None and the caller keeps its torch code: a kernel only ever
makes something faster."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from assistant.devices import cpu_identity

log = logging.getLogger(__name__)

SOURCES = Path(__file__).parent / "kernels"
FLAGS = ("-O3", "-march=native", "-shared", "-fPIC", "-pthread")
BUILD_SECONDS = 120


def compiler() -> str | None:
    """The C compiler to use: $CC, else cc, gcc or clang on the PATH; None when there is none."""
    if platform.system() == "Windows":
        return None
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def load(
    name: str, cache: Path, *, sources: Path = SOURCES, flags: tuple[str, ...] = ()
) -> ctypes.CDLL | None:
    """The kernel `<sources>/<name>.c`, built into `cache` if needed (with `flags` besides the
    usual ones); None if it cannot be."""
    source = sources / f"{name}.c"
    tool = compiler()
    if tool is None or not source.is_file():
        log.debug("kernel %s: no C compiler or no source", name)
        return None
    library = cache / f"{name}-{_build_key(source, tool, flags)}.so"
    if not library.is_file() and not _build(source, tool, library, flags):
        return None
    try:
        return ctypes.CDLL(str(library))
    except OSError as error:
        log.debug("kernel %s: cannot load %s: %s", name, library, error)
        return None


def _build_key(source: Path, tool: str, flags: tuple[str, ...]) -> str:
    """Changes with the source, the compiler, the flags and the CPU (-march=native)."""
    digest = hashlib.sha256(source.read_bytes())
    for header in sorted(source.parent.glob("*.h")):  # what the sources may include
        digest.update(header.read_bytes())
    digest.update(" ".join((tool, _compiler_version(tool), *FLAGS, *flags)).encode())
    digest.update(cpu_identity().encode())
    return digest.hexdigest()[:16]


def _compiler_version(tool: str) -> str:
    try:
        result = subprocess.run(
            [tool, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return result.stdout.split("\n", 1)[0]


def _build(source: Path, tool: str, library: Path, flags: tuple[str, ...]) -> bool:
    """Compile into a temporary file beside `library`, then rename it into place (atomic)."""
    try:
        library.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=library.parent, suffix=".so.tmp")
        os.close(handle)
    except OSError as error:
        log.debug("kernel %s: cannot write to %s: %s", source.stem, library.parent, error)
        return False
    try:
        result = subprocess.run(
            [tool, *FLAGS, *flags, "-o", temporary, str(source)],
            capture_output=True,
            text=True,
            timeout=BUILD_SECONDS,
            check=False,
        )
        if result.returncode != 0:
            log.debug("kernel %s: build failed: %s", source.stem, result.stderr.strip())
            return False
        os.replace(temporary, library)
        return True
    except (OSError, subprocess.SubprocessError) as error:
        log.debug("kernel %s: build failed: %s", source.stem, error)
        return False
    finally:
        Path(temporary).unlink(missing_ok=True)


def attention_library(cache: Path) -> tuple[ctypes.CDLL | None, str | None]:
    """The C attention kernel built into `cache`, or None and why not."""
    if compiler() is None:
        return None, "no C compiler found (cc, gcc, clang or $CC)"
    library = load("attention", cache)
    if library is None:
        return None, "the kernel did not compile"
    if not library.assistant_attention_supported():
        return None, "this CPU lacks AVX512-BF16"
    return library, None
