"""The torch engine's measured choices as `assistant info` shows them, read without torch.

`kernel_plan` measures on a loaded model which products, attention and thread counts the torch
engine runs, and caches the choices (`calibration`). `info` loads no model, and importing torch
and transformers only to read that cache would cost it a second of CPU or more, most of the
command's time. So this module reads the same cache entry with json alone: the model's shapes
(half of the cache key) come from the `config.json` of the dense copy (or of the model's folder),
where `kernel_plan` reads them off the loaded model's config, and the settings that force a
choice are applied on top as `kernel_plan._apply_settings` applies them (a test keeps the two
in step). Whether the C attention kernel runs here is asked of `native` directly, as
`attention.PromptAttention.unavailable_reason` does, without the module that imports torch.

Imports neither torch nor transformers (a test runs `info` and checks).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from assistant.calibration import CalibrationCache, Choice, key_of
from assistant.config import Config
from assistant.devices import available_cores
from assistant.errors import ModelError
from assistant.llm import native

# The model config fields the torch engine's choices depend on (`kernel_plan` keys them so).
SHAPE_FIELDS = (
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
)


def shapes_key(settings: Mapping[str, Any]) -> str:
    """The cache key of the torch engine's choices for a model with these config values on this
    machine (the key `kernel_plan` stores them under)."""
    shapes = {name: settings.get(name) for name in SHAPE_FIELDS}
    return key_of("torch-kernels", shapes=shapes, cores=available_cores())


def cached_choices(config: Config) -> dict[str, Choice] | None:
    """The choices a load of `config.model` on the CPU would use, from the cache alone, with the
    forcing settings applied; None when they have not been measured yet (or the model's files
    cannot be read)."""
    from assistant.llm.weights import dense_cache_dir, four_bit_gguf
    from assistant.models import resolve_language_model

    try:
        source = resolve_language_model(config.model)
        folder = dense_cache_dir(source, config.models_dir) if source.gguf_file else source.location
        settings = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        four_bit = source.gguf_file is not None and four_bit_gguf(source, config.models_dir)
    except (OSError, ValueError, ModelError):
        return None
    if not isinstance(settings, dict):
        return None
    asked = config.weights == "int4" or config.step_products not in ("auto", "float32")
    reason = (
        "forced by ASSISTANT_WEIGHTS=dense"
        if config.weights == "dense"
        else "this torch has no int4 CPU kernels"
        if _int4_known_missing()
        else None
        if asked or four_bit
        else "float32 weights: the model is not a 4-bit file"
    )
    if reason is not None:
        return with_forced_threads(
            plain_choices(reason, config.step_threads or available_cores()), config
        )
    cache = CalibrationCache(config.models_dir)
    for candidate in _shape_readings(settings):
        measured = cache.get(shapes_key(candidate))
        if measured is not None:
            return with_settings(measured, config)
    # Not measured yet; or (never with torch's own wheels) this torch has no int4 kernels, which
    # only importing it would tell: the first question measures, or finds that out.
    return None


def with_settings(measured: Mapping[str, Choice], config: Config) -> dict[str, Choice]:
    """The measured choices with the settings that force one applied on top."""
    choices = dict(measured)
    if config.step_products != "auto":
        choices["step_products"] = _forced(
            measured["step_products"], config.step_products, "ASSISTANT_STEP_PRODUCTS"
        )
    elif config.weights == "int4" and measured["step_products"].chosen == "float32":
        choices["step_products"] = _forced(measured["step_products"], "int4", "ASSISTANT_WEIGHTS")
    if config.prompt_products != "auto":
        choices["prompt_products"] = _forced(
            measured["prompt_products"], config.prompt_products, "ASSISTANT_PROMPT_PRODUCTS"
        )
    if config.native_attention != "auto":
        chosen = "kernel" if config.native_attention == "on" else "torch"
        choices["prompt_attention"] = _forced(
            measured["prompt_attention"], chosen, "ASSISTANT_NATIVE_ATTENTION"
        )
    if "decode_step" not in choices:  # a calibration from before the step kernel
        choices["decode_step"] = Choice("decode_step", "torch", {}, "not measured")
    if config.native_step != "auto":
        chosen = "kernel" if config.native_step == "on" else "torch"
        choices["decode_step"] = _forced(choices["decode_step"], chosen, "ASSISTANT_NATIVE_STEP")
    return with_forced_threads(choices, config)


def describe(choices: Mapping[str, Choice]) -> dict[str, str]:
    """One line per choice, for `assistant info`."""
    return {name: choice.describe() for name, choice in choices.items()}


def attention_kernel_reason(cache: Path) -> str | None:
    """None when the C attention kernel works on this machine (building it into `cache` if
    needed); else why not, in a few words."""
    return native.attention_library(cache)[1]


def plain_choices(reason: str, threads: int) -> dict[str, Choice]:
    """The plain path's choices (`kernel_plan.dense_plan` runs them): float32 products and
    torch's attention."""
    return {
        name: Choice(name, chosen, {}, reason)
        for name, chosen in (
            ("step_products", "float32"),
            ("prompt_products", "float32"),
            ("prompt_attention", "torch"),
            ("decode_step", "torch"),
            ("step_threads", str(threads)),
        )
    }


def with_forced_threads(choices: dict[str, Choice], config: Config) -> dict[str, Choice]:
    """The choices with ASSISTANT_STEP_THREADS applied when it is set."""
    if config.step_threads > 0:
        choices["step_threads"] = _forced(
            choices["step_threads"], str(config.step_threads), "ASSISTANT_STEP_THREADS"
        )
    return choices


def _forced(measured: Choice, chosen: str, variable: str) -> Choice:
    return Choice(measured.name, chosen, measured.seconds, f"forced by {variable}")


def _shape_readings(settings: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The config as written, then with the two fields a config class fills in when the file
    leaves them out (as Llama's, Mistral's and Qwen's do: one key/value head per query head,
    and the hidden size split over the heads), so a hand-written config.json is found too."""
    yield settings
    heads, hidden = settings.get("num_attention_heads"), settings.get("hidden_size")
    if isinstance(heads, int) and isinstance(hidden, int) and heads > 0:
        derived = {"num_key_value_heads": heads, "head_dim": hidden // heads}
        filled = {
            **settings,
            **{name: value for name, value in derived.items() if settings.get(name) is None},
        }
        if filled != settings:
            yield filled


def _int4_known_missing() -> bool:
    """Whether this torch lacks the int4 CPU kernels, asked only of a torch already imported."""
    if "torch" not in sys.modules:
        return False
    from assistant.llm.quantize import int4_supported

    return not int4_supported()
