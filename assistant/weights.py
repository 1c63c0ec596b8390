"""Weights of a causal language model: a local folder, a hub id, or a GGUF file.

The bundled model is a quantized GGUF file that transformers must de-quantize on every load (~20 s
on a small CPU). The first load therefore saves a dense copy under the models folder, written to a
temporary folder and renamed into place so an interrupted save never leaves a half-written cache;
later loads read that copy in well under a second. An unreadable copy is rebuilt. Whether a GGUF
file is mostly 4-bit (then `quantize` packs it back to 4 bits on the CPU) is noted beside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.files import write_text_atomically
from assistant.models import ModelSource

if TYPE_CHECKING:
    import torch

_STALE_TEMP_SECONDS = 600.0  # a temporary dense copy this old belongs to a killed run
_FOUR_BIT_GGUF_TYPES = frozenset({"Q4_0", "Q4_1", "Q4_K", "IQ4_NL", "IQ4_XS"})


def dense_cache_dir(source: ModelSource, models_dir: Path) -> Path:
    """Where the de-quantized copy of a GGUF file lives; a new file (size, mtime) gets a new one."""
    if source.gguf_file is None:
        raise ValueError("only GGUF models have a dense cache")
    path = Path(source.location) / source.gguf_file
    status = path.stat()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem)
    return models_dir / f"{stem}-{status.st_size}-{status.st_mtime_ns}-dense"


def _mostly_four_bit(gguf_path: Path) -> bool:
    """Whether most weights of a GGUF file (by count) are stored in a 4-bit type."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))
    four_bit = total = 0
    for tensor in reader.tensors:
        count = int(tensor.n_elements)
        total += count
        if tensor.tensor_type.name in _FOUR_BIT_GGUF_TYPES:
            four_bit += count
    return total > 0 and four_bit * 2 >= total


def four_bit_gguf(source: ModelSource, models_dir: Path) -> bool:
    """Whether most weights of the GGUF file are 4-bit. Reading a GGUF header takes seconds (it
    parses the whole vocabulary), so the answer is kept in a small file beside the dense copy."""
    dense = dense_cache_dir(source, models_dir)
    note = dense.with_name(f"{dense.name}.json")
    try:
        return bool(json.loads(note.read_text(encoding="utf-8"))["four_bit"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    answer = _mostly_four_bit(Path(source.location) / str(source.gguf_file))
    with contextlib.suppress(OSError):  # a read-only cache: the header is read again next time
        write_text_atomically(note, json.dumps({"four_bit": answer}))
    return answer


def load_folder(location: str, dtype: torch.dtype) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(location)
    model: Any = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
    return model, tokenizer


def load_gguf(source: ModelSource, models_dir: Path, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load through the dense cache, building (or rebuilding) it when needed."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = dense_cache_dir(source, models_dir)
    if final.is_dir():
        try:
            return load_folder(str(final), dtype)
        except Exception:  # any unreadable cache (bad JSON, truncated weights) is rebuilt
            shutil.rmtree(final, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file)
    # De-quantize in float32 so the cached copy is exact whatever dtype this run uses.
    model: Any = AutoModelForCausalLM.from_pretrained(
        source.location, gguf_file=source.gguf_file, dtype=torch.float32
    )
    try:
        _save_atomically(model, tokenizer, final)
    except OSError as error:  # a read-only or full disk costs speed next time, not this answer
        warnings.warn(
            f"could not keep a dense copy of the model in {final.parent} ({error}); "
            "the next load will convert the GGUF file again",
            stacklevel=3,
        )
    return model.to(dtype), tokenizer


def _save_atomically(model: Any, tokenizer: Any, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(final)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        # The GGUF quantizer is only needed to read the file; with it attached, saving refuses.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(temporary)
        tokenizer.save_pretrained(temporary)
        try:
            os.replace(temporary, final)
        except OSError:
            if not final.is_dir():  # another process finished first otherwise: use theirs
                raise
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _remove_stale_temporaries(final: Path) -> None:
    cutoff = time.time() - _STALE_TEMP_SECONDS
    for leftover in final.parent.glob(f".{final.name}.*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Hide transformers' per-load progress bars; the caller decides what to show."""
    from transformers.utils import logging

    hub_logging: Any = logging  # its progress-bar switches are untyped
    was_enabled = hub_logging.is_progress_bar_enabled()
    hub_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hub_logging.enable_progress_bar()
