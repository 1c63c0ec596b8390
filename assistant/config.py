"""One frozen configuration, built once from defaults, `ASSISTANT_*` variables and CLI flags.

Every setting has a default here; `ASSISTANT_<NAME>` in the environment overrides it, and explicit
keyword overrides (what the CLI passes) win over both. The object is passed explicitly to whatever
needs it, never read from a global.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError
from assistant.models import BUNDLED_EMBEDDER, BUNDLED_LANGUAGE_MODEL


def default_home() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/assistant or ~/.local/share/assistant."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "assistant"


@dataclass(frozen=True)
class Config:
    """All settings of one run. Build it with `Config.load()`; never mutate it."""

    home: Path = field(default_factory=default_home)
    database_url: str = ""  # empty: SQLite file `assistant.db` under home
    cache_dir: str = ""  # converted models; empty: `models/` under home (share it between homes)
    embedding_model: str = BUNDLED_EMBEDDER
    embedding_backend: str = "auto"  # auto | torch | openvino | onnx (evals/bench/ingest.py)
    model: str = BUNDLED_LANGUAGE_MODEL
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # auto: the engine measured faster on this CPU for the model (engines.py; llama.cpp needs the
    # xllamacpp package and a .gguf model on the CPU); torch; llamacpp.
    engine: str = "auto"
    # The torch engine's CPU paths (kernel_plan.py): each `auto` is measured on this CPU at the
    # first load and cached; any other value forces it.
    # auto: 4-bit weights for a 4-bit GGUF model when its steps measure faster than float32, else
    # dense; int4: always on the CPU (lossy for other models); dense: float32 (see quantize.py)
    weights: str = "auto"
    step_products: str = "auto"  # auto | int4 | int4_native | float32: one-token steps' products
    prompt_products: str = "auto"  # auto | int8 | int4 | float32: the prompt's pass, 4-bit weights
    native_attention: str = "auto"  # auto | on | off: the prompt's attention in the C kernel
    step_threads: int = 0  # CPU threads for one-token steps; 0: measured
    debug: bool = False

    # Ingestion
    chunk_tokens: int = 200
    chunk_overlap: int = 30
    max_file_bytes: int = 20_000_000
    embed_batch_size: int = 64
    index_save_seconds: float = 30.0

    # Retrieval
    top_k: int = 5
    rewrite_follow_ups: bool = True  # expand follow-up questions with the previous turn
    retrieval_mode: str = "hybrid"  # dense | lexical | hybrid
    rrf_k: int = 60
    candidates: int = 50

    # Generation
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 0.9
    top_k_sampling: int = 50
    repetition_penalty: float = 1.15
    context_cap: int = 4096
    answer_reserve: int = 320
    seed: int = 0

    # Grounding
    unsupported: str = "flag"  # flag | drop
    support_threshold: float = 0.19  # tuned: python evals/tune_support.py (see grounding.py)
    min_retrieval_score: float = 0.46  # question-passage cosine below which we abstain
    extractive_fallback: bool = True  # quote passage sentences when the model is unsupported
    # Abstain before generating when a name, acronym or number of the question is in none of the
    # passages found (the documents are about something else).
    require_question_terms: bool = True
    # Abstain when the question asks for a quantity or a time ("How many...", "When...") and no
    # supported sentence of the answer holds one (answer_types.py).
    require_answer_type: bool = True
    # Stop generating once this many sentences are complete and none is supported by the
    # passages (the answer would be replaced by quotes or an abstention anyway); 0: never.
    give_up_after: int = 3
    min_quote_score: float = 0.45
    # Quote the passages instead when fewer than this share of the answer's claims is supported
    # (the rest would be shown flagged); 0: only when nothing is supported.
    min_supported_share: float = 0.5

    @property
    def database(self) -> str:
        """The SQLAlchemy URL of the store."""
        return self.database_url or f"sqlite:///{self.home / 'assistant.db'}"

    @property
    def index_path(self) -> Path:
        return self.home / "index.faiss"

    @property
    def models_dir(self) -> Path:
        return Path(self.cache_dir).expanduser() if self.cache_dir else self.home / "models"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Defaults, then `ASSISTANT_*` from `environ` (default: os.environ), then `overrides`.

        Overrides whose value is None are ignored, so the CLI can pass every flag unconditionally.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        known = {f.name: f for f in fields(cls)}
        for name, spec in known.items():
            raw = environ.get(f"ASSISTANT_{name.upper()}")
            if raw is not None and raw != "":
                values[name] = _convert(name, raw, spec.type)
        for name, value in overrides.items():
            if name not in known:
                raise ConfigError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = _convert(name, value, known[name].type)
        config = cls(**values)
        config.validate()
        return config

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (validated again)."""
        config = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        config.validate()
        return config

    def validate(self) -> None:
        if self.chunk_tokens < 16:
            raise ConfigError("chunk_tokens must be at least 16")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError("chunk_overlap must be between 0 and chunk_tokens - 1")
        if self.embedding_backend not in ("auto", "torch", "openvino", "onnx"):
            raise ConfigError(
                f"embedding_backend must be auto, torch, openvino or onnx, not "
                f"{self.embedding_backend!r}"
            )
        _check_choice("engine", self.engine, ("auto", "torch", "llamacpp"))
        _check_choice("prompt_products", self.prompt_products, ("auto", "int8", "int4", "float32"))
        _check_choice(
            "step_products", self.step_products, ("auto", "int4", "int4_native", "float32")
        )
        _check_choice("native_attention", self.native_attention, ("auto", "on", "off"))
        if not 0.0 <= self.min_supported_share <= 1.0:
            raise ConfigError("min_supported_share must be between 0 and 1")
        if self.step_threads < 0:
            raise ConfigError("step_threads must be 0 (measured) or more")
        if self.weights not in ("auto", "dense", "int4"):
            raise ConfigError(f"weights must be auto, dense or int4, not {self.weights!r}")
        if self.retrieval_mode not in ("dense", "lexical", "hybrid"):
            raise ConfigError(
                f"retrieval_mode must be dense, lexical or hybrid, not {self.retrieval_mode!r}"
            )
        if self.unsupported not in ("flag", "drop"):
            raise ConfigError(f"unsupported must be flag or drop, not {self.unsupported!r}")
        if self.top_k < 1:
            raise ConfigError("top_k must be at least 1")
        if self.temperature < 0:
            raise ConfigError("temperature must be 0 (greedy) or more")
        if self.give_up_after < 0:
            raise ConfigError("give_up_after must be 0 (never) or more")
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens must be at least 1")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v, Path) else v) for f, v in _items(self)}


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(
            f"{name} (ASSISTANT_{name.upper()}) must be {', '.join(allowed[:-1])} or "
            f"{allowed[-1]}, not {value!r}"
        )


def _items(config: Config) -> list[tuple[dataclasses.Field[Any], Any]]:
    return [(f, getattr(config, f.name)) for f in fields(config)]


_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false"}


def _convert(name: str, raw: Any, type_name: Any) -> Any:
    """Turn an environment string (or CLI value) into the field's type, with a clear error."""
    type_text = str(type_name)
    try:
        if type_text == "Path":
            return Path(raw).expanduser()
        if type_text == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if type_text == "int":
            return int(raw)
        if type_text == "float":
            return float(raw)
        return str(raw)
    except ValueError:
        raise ConfigError(
            f"setting {name} (ASSISTANT_{name.upper()}) must be "
            f"{_KINDS.get(type_text, 'a ' + type_text)}, not {raw!r}"
        ) from None
