"""Weights of a causal language model: a local folder, a hub id, or a GGUF file.

The bundled model is a quantized GGUF file that transformers must de-quantize, in Python, on every
load (what that costs: evals/README.md, the first load in the AVX2 table). The first load therefore
saves a dense copy under the models folder, written to a temporary folder and renamed into place so
an interrupted save never leaves a half-written cache; later loads read that copy as it is, with
nothing to convert. An unreadable copy is rebuilt. Whether a GGUF file is mostly 4-bit (then
`quantize` packs it back to 4 bits on the CPU) is noted beside it.
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
from dataclasses import dataclass
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


def load_folder(location: str, dtype: torch.dtype, *, plain: bool = True) -> tuple[Any, Any]:
    """A model folder (or hub id): a plain Llama runs on our own code (`llama`, without
    importing transformers) unless `plain` is False, anything else on transformers'."""
    ours = load_plain(Path(location), dtype) if plain else None
    if ours is not None:
        return ours
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_progress_bars():
        tokenizer = AutoTokenizer.from_pretrained(location)
        model: Any = AutoModelForCausalLM.from_pretrained(location, dtype=dtype)
    return model, tokenizer


def load_plain(folder: Path, dtype: torch.dtype) -> tuple[Any, Any] | None:
    """The model and tokenizer of a local folder without transformers (`llama`,
    `chat_tokenizer`), or None when either needs transformers."""
    if not folder.is_dir():
        return None
    from assistant.llm import chat_tokenizer, llama

    tokenizer = chat_tokenizer.load(folder)
    if tokenizer is None:
        return None
    model = llama.load(folder, dtype)
    return None if model is None else (model, tokenizer)


def load_gguf(
    source: ModelSource, models_dir: Path, dtype: torch.dtype, *, plain: bool = True
) -> tuple[Any, Any]:
    """Load through the dense cache, building (or rebuilding) it when needed; a model loads
    from the cache on the first load too, so the same code runs it every time."""
    final = dense_cache_dir(source, models_dir)
    if final.is_dir():
        try:
            return load_folder(str(final), dtype, plain=plain)
        except Exception:  # any unreadable cache (bad JSON, truncated weights) is rebuilt
            shutil.rmtree(final, ignore_errors=True)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_progress_bars():
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
    ours = load_plain(final, dtype) if plain else None
    return ours if ours is not None else (model.to(dtype), tokenizer)


@dataclass(frozen=True)
class ModelShape:
    """What an engine that reads the weights itself needs of a model's config."""

    max_position_embeddings: int | None


def gguf_tokenizer(source: ModelSource, models_dir: Path) -> tuple[Any, Any]:
    """The tokenizer and model config of a GGUF file, for an engine that reads the weights itself
    (llama.cpp). transformers parses the whole file for either (seconds on a small CPU), so they
    are read from the dense copy when there is one, else from a small copy of their own."""
    from assistant.llm import chat_tokenizer

    for folder in (dense_cache_dir(source, models_dir), _tokenizer_cache_dir(source, models_dir)):
        if not (folder / "config.json").is_file():
            continue
        try:
            plain = chat_tokenizer.load(folder)  # without transformers where it can
            if plain is not None:
                settings = json.loads((folder / "config.json").read_text(encoding="utf-8"))
                return plain, ModelShape(settings.get("max_position_embeddings"))
            from transformers import AutoConfig, AutoTokenizer

            return AutoTokenizer.from_pretrained(folder), AutoConfig.from_pretrained(folder)
        except (OSError, ValueError, KeyError, AttributeError):
            continue  # unreadable: read the GGUF file again
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.location, gguf_file=source.gguf_file)
    config = AutoConfig.from_pretrained(source.location, gguf_file=source.gguf_file)
    final = _tokenizer_cache_dir(source, models_dir)
    with contextlib.suppress(OSError):  # a read-only cache: read the GGUF file again next time
        _save_atomically(config, tokenizer, final)
    return tokenizer, config


def eight_bit_gguf(source: ModelSource, models_dir: Path) -> Path | None:
    """A copy of a Q4_1 GGUF file with those tensors in Q8_0, for llama.cpp (built once).

    llama.cpp multiplies a prompt's rows with its tiled matrix kernels only for some types: on
    AVX2 CPUs Q8_0 among them and Q4_1 not, so the Q8_0 copy reads a prompt about twice as fast
    (`evals/README.md`). Each Q4_1 weight is `minimum + code * scale`; Q8_0 keeps it as a signed
    8-bit code times one scale per 32 weights, within 1/254 of the group's largest magnitude,
    a small fraction of the Q4_1 step. Other tensors are copied as they are. `engines` measures
    whether the copy is faster on this CPU before using it. None: the file holds no Q4_1 tensor.
    """
    original = Path(source.location) / str(source.gguf_file)
    dense = dense_cache_dir(source, models_dir)
    final = dense.with_name(dense.name.removesuffix("-dense") + "-q8_0.gguf")
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.")
    os.close(handle)
    try:
        if not _requantize(original, Path(temporary)):
            return None
        os.replace(temporary, final)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return final


def _requantize(original: Path, target: Path) -> bool:
    """Write `original` with its Q4_1 tensors in Q8_0 to `target`; False (and nothing
    complete written) when it has none."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter, quants

    reader = GGUFReader(str(original))
    if not any(tensor.tensor_type == GGMLQuantizationType.Q4_1 for tensor in reader.tensors):
        return False
    architecture = reader.fields["general.architecture"].contents()
    writer = GGUFWriter(str(target), architecture)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue  # written by the writer itself
        kind = field.types[0]
        if kind == GGUFValueType.ARRAY:
            writer.add_key_value(name, field.contents(), kind, sub_type=field.types[-1])
        else:
            writer.add_key_value(name, field.contents(), kind)
    for tensor in reader.tensors:
        if tensor.tensor_type == GGMLQuantizationType.Q4_1:
            values = quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
            data = quants.quantize(values, GGMLQuantizationType.Q8_0)
            writer.add_tensor(tensor.name, data, raw_dtype=GGMLQuantizationType.Q8_0)
        else:
            writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return True


def _tokenizer_cache_dir(source: ModelSource, models_dir: Path) -> Path:
    dense = dense_cache_dir(source, models_dir)
    return dense.with_name(dense.name.removesuffix("-dense") + "-tokenizer")


def _save_atomically(model: Any, tokenizer: Any, final: Path) -> None:
    """Save a model (or only its config) and tokenizer into `final` through a temporary folder."""
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(final)
    temporary = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        # The GGUF quantizer is only needed to read the file; with it attached, saving refuses.
        model.hf_quantizer = None
        settings = getattr(model, "config", model)
        if hasattr(settings, "quantization_config"):
            del settings.quantization_config
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
