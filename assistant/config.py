"""One frozen configuration, built once from defaults, `config.toml`, `ASSISTANT_*` variables and
CLI flags.

Every setting has a default here; `config.toml` in the home overrides it, `ASSISTANT_<NAME>` in
the environment overrides both, and explicit keyword overrides (what the CLI passes) win over
all. `Config.origins` says which of these each setting came from (`assistant info` shows it). The
object is passed explicitly to whatever needs it, never read from a global. This is the only
module that reads `ASSISTANT_*` settings. The one exception, on purpose, is the two secrets: the
API keys `ASSISTANT_OPENAI_API_KEY` (read by `llm/openai_client.py`) and `ASSISTANT_API_KEY` (by
`cli/serve.py`) are no settings, never read from the file, and read from the environment only
where they are used, so no `Config` ever holds one and `assistant info` can never show it.

`config.toml` names settings as the environment does, lower case, in the tables of their sections
(`[retrieval]` `top_k = 8`) or at the top level (`top_k = 8`); an unknown key, a setting under
another section's table or a value of the wrong type is an error naming the file and the key, so
a typo never goes unnoticed. The home itself cannot be set there (the file lives in it).

Settings are read flat (`config.top_k`), and each belongs to one section (`SECTIONS`, in the order
of the pipeline) so docs and `assistant info` can show them grouped: `config.settings()`. A setting
with a fixed set of values has a `Literal` type, the one place those values are written; the check
and the modules that need the list (`typing.get_args`) derive it from there.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit, urlunsplit

from assistant.errors import ConfigError
from assistant.models import BUNDLED_EMBEDDER, BUNDLED_LANGUAGE_MODEL

Section = Literal[
    "paths", "models", "engine", "ingest", "retrieval", "generation", "grounding", "diagnostics"
]
SECTIONS: tuple[Section, ...] = get_args(Section)

ExportedBackend = Literal["openvino", "onnx"]  # embedders run from an export (embed/export.py)
EmbeddingBackend = Literal["auto", "torch", ExportedBackend]
Engine = Literal["auto", "torch", "llamacpp"]
Weights = Literal["auto", "dense", "int4"]
# one-token steps' products (int4_native: our C kernel; int4_native_q8: it, with 8-bit rows)
StepProducts = Literal["int4", "int4_native", "int4_native_q8", "float32"]
# the prompt's products with 4-bit weights (int4_native: the 4-bit codes in our C kernel)
PromptProducts = Literal["int8", "int4", "int4_native", "float32"]
NativeAttention = Literal["auto", "on", "off"]
ModelCode = Literal["auto", "transformers"]  # auto: a plain Llama runs on llm/llama.py
RetrievalMode = Literal["dense", "lexical", "hybrid"]
UnsupportedMode = Literal["flag", "drop"]
VerifierMode = Literal["model", "rules"]  # grounding/verifier.py, or the hand-set rules
Origin = Literal["default", "config.toml", "environment", "flag"]  # where a setting came from

CONFIG_FILE = "config.toml"  # in the home

T = TypeVar("T")


def setting(section: Section, default: T) -> T:
    """A field with its default and the section it is listed under (in the field's metadata)."""
    return field(default=default, metadata={"section": section})


def default_home() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/assistant or ~/.local/share/assistant."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "assistant"


class Setting(NamedTuple):
    """One setting as `Config.settings()` lists it."""

    section: Section
    name: str
    value: Any
    default: Any


@dataclass(frozen=True)
class Config:
    """All settings of one run. Build it with `Config.load()`; never mutate it."""

    # paths: where state lives
    home: Path = field(default_factory=default_home, metadata={"section": "paths"})
    database_url: str = setting("paths", "")  # empty: SQLite file `assistant.db` under home
    cache_dir: str = setting("paths", "")  # converted models; empty: `models/` under home
    prompts_dir: str = setting("paths", "")  # prompt files to try; empty: the package's

    # models: which models, and where they run
    embedding_model: str = setting("models", BUNDLED_EMBEDDER)
    # auto: OpenVINO on a CPU when installed, else torch; onnx: ONNX Runtime with int8 weights
    # (the `onnx` extra), the exported backend where OpenVINO is not installed (embed/embedder.py).
    embedding_backend: EmbeddingBackend = setting("models", "auto")
    model: str = setting("models", BUNDLED_LANGUAGE_MODEL)
    device: str = setting("models", "auto")  # auto | cpu | cuda | cuda:N

    # engine: what runs the language model on the CPU
    # auto: the engine measured faster on this CPU for the model (llm/loader.py; llama.cpp needs
    # the xllamacpp package and a .gguf model on the CPU); torch; llamacpp.
    engine: Engine = setting("engine", "auto")
    # The torch engine's CPU paths (llm/kernel_plan.py): each `auto` is measured on this CPU at
    # the first load and cached; any other value forces it.
    # auto: 4-bit weights for a 4-bit GGUF model when its steps measure faster than float32, else
    # dense; int4: always on the CPU (lossy for other models); dense: float32 (llm/quantize.py)
    weights: Weights = setting("engine", "auto")
    step_products: Literal["auto", StepProducts] = setting("engine", "auto")
    prompt_products: Literal["auto", PromptProducts] = setting("engine", "auto")
    native_attention: NativeAttention = setting("engine", "auto")  # the prompt's, in the C kernel
    native_step: NativeAttention = setting("engine", "auto")  # a whole decoding step in C (step.py)
    step_threads: int = setting("engine", 0)  # CPU threads for one-token steps; 0: measured
    model_code: ModelCode = setting("engine", "auto")  # whose forward pass runs the model
    # The OpenAI-compatible engine (`model = openai:NAME`, llm/openai_engine.py). Its API key is
    # read from ASSISTANT_OPENAI_API_KEY by llm/openai_client.py alone: no setting ever holds it.
    openai_base_url: str = setting("engine", "http://127.0.0.1:8080/v1")
    openai_timeout: float = setting("engine", 300.0)  # seconds to wait for the server's next bytes
    openai_retries: int = setting("engine", 3)  # new connections after a failed one, before text
    openai_retry_seconds: float = setting("engine", 0.5)  # the first wait; doubles each retry
    # Counts a remote model's tokens: a hub id, folder or .gguf file; empty: a high estimate
    # (llm/token_counting.py).
    tokenizer: str = setting("engine", "")

    # ingest
    chunk_tokens: int = setting("ingest", 200)
    chunk_overlap: int = setting("ingest", 30)
    max_file_bytes: int = setting("ingest", 20_000_000)
    embed_batch_size: int = setting("ingest", 64)
    index_save_seconds: float = setting("ingest", 30.0)

    # retrieval
    top_k: int = setting("retrieval", 5)
    rewrite_follow_ups: bool = setting("retrieval", True)  # expand follow-ups with the last turn
    retrieval_mode: RetrievalMode = setting("retrieval", "hybrid")
    rrf_k: int = setting("retrieval", 60)
    candidates: int = setting("retrieval", 50)

    # generation
    max_new_tokens: int = setting("generation", 256)
    temperature: float = setting("generation", 0.0)
    top_p: float = setting("generation", 0.9)
    top_k_sampling: int = setting("generation", 50)
    repetition_penalty: float = setting("generation", 1.15)
    context_cap: int = setting("generation", 4096)
    answer_reserve: int = setting("generation", 320)
    seed: int = setting("generation", 0)

    # grounding
    unsupported: UnsupportedMode = setting("grounding", "flag")
    # Who judges support and answerability: the hand-set rules, or the trained cross-encoder
    # (grounding/verifier.py). The rules stay the default until the verifier measures better on
    # the evals (evals/README.md, "Old checker vs trained verifier"): today it abstains on
    # answerable questions the rules answer.
    verifier: VerifierMode = setting("grounding", "rules")
    support_threshold: float = setting("grounding", 0.19)  # tuned: evals/tune_support.py
    min_retrieval_score: float = setting("grounding", 0.46)  # question-passage cosine to answer
    extractive_fallback: bool = setting("grounding", True)  # quote passages when unsupported
    # Abstain before generating when a name, acronym or number of the question is in none of the
    # passages found (the documents are about something else).
    require_question_terms: bool = setting("grounding", True)
    # Abstain when the question asks for a quantity or a time ("How many...", "When...") and no
    # supported sentence of the answer holds one (grounding/answer_types.py).
    require_answer_type: bool = setting("grounding", True)
    # Stop generating once this many sentences are complete and none is supported by the
    # passages (the answer would be replaced by quotes or an abstention anyway); 0: never.
    give_up_after: int = setting("grounding", 3)
    min_quote_score: float = setting("grounding", 0.45)
    # Quote the passages instead when fewer than this share of the answer's claims is supported
    # (the rest would be shown flagged); 0: only when nothing is supported.
    min_supported_share: float = setting("grounding", 0.5)

    # diagnostics
    debug: bool = setting("diagnostics", False)  # tracebacks instead of one-line errors

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
        """Defaults, then `config.toml` in the home, then `ASSISTANT_*` from `environ` (default:
        os.environ), then `overrides`.

        Overrides whose value is None are ignored, so the CLI can pass every flag unconditionally.
        The home (`overrides`, else the environment, else the default) says where the file is.
        """
        values, _ = _layers(environ, overrides)
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def origins(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> dict[str, Origin]:
        """Where each setting of `load(environ, **overrides)` comes from, for every setting."""
        _, origins = _layers(environ, overrides)
        return {spec.name: origins.get(spec.name, "default") for spec in fields(cls)}

    @classmethod
    def from_environment(cls, name: str, environ: Mapping[str, str] | None = None) -> Any:
        """One setting as `load` reads it without flags (`ASSISTANT_<NAME>`, else `config.toml`
        in the home the environment names, else its default), for the code that must decide
        before or without a Config: where the prompt files are, and whether the CLI's error
        handler shows tracebacks. A value `load` would reject (or a file it could not read)
        counts as unset here; `load` reports it when the command builds its Config."""
        environ = os.environ if environ is None else environ
        raw = environ.get(_variable(name))
        if raw:
            try:
                value = _convert(name, raw)
            except ConfigError:
                return _default(name)
            if value in _choices().get(name, (value,)):
                return value
            return _default(name)
        try:
            home = _convert("home", environ.get(_variable("home")) or default_home())
            from_file = read_config_file(home / CONFIG_FILE)
        except ConfigError:
            return _default(name)
        return from_file.get(name, _default(name))

    @property
    def config_file(self) -> Path:
        """Where `config.toml` is read from (it may not exist)."""
        return self.home / CONFIG_FILE

    def replace(self, **changes: Any) -> Config:
        """A copy with some settings changed (validated again)."""
        config = dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
        config.validate()
        return config

    def validate(self) -> None:
        for name, allowed in _choices().items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(
                    f"{name} ({_variable(name)}) must be {', '.join(allowed[:-1])} or "
                    f"{allowed[-1]}, not {value!r}"
                )
        if self.chunk_tokens < 16:
            raise ConfigError("chunk_tokens must be at least 16")
        if not 0 <= self.chunk_overlap < self.chunk_tokens:
            raise ConfigError("chunk_overlap must be between 0 and chunk_tokens - 1")
        if not 0.0 <= self.min_supported_share <= 1.0:
            raise ConfigError("min_supported_share must be between 0 and 1")
        if self.step_threads < 0:
            raise ConfigError("step_threads must be 0 (measured) or more")
        if self.top_k < 1:
            raise ConfigError("top_k must be at least 1")
        if self.temperature < 0:
            raise ConfigError("temperature must be 0 (greedy) or more")
        if self.give_up_after < 0:
            raise ConfigError("give_up_after must be 0 (never) or more")
        if self.max_new_tokens < 1:
            raise ConfigError("max_new_tokens must be at least 1")

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    def settings(self) -> list[Setting]:
        """Every setting with its section, value and default, section by section (`SECTIONS`)."""
        listed = [
            Setting(
                f.metadata["section"],
                f.name,
                _shown(_plain(getattr(self, f.name))),
                _plain(_default(f.name)),
            )
            for f in fields(self)
        ]
        return sorted(listed, key=lambda item: SECTIONS.index(item.section))


def display_url(url: str) -> str:
    """`url` fit to show: its password, if any, replaced by *** (database and server URLs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, f"{parts.username}:***@{host}", *parts[2:]))


def _shown(value: Any) -> Any:
    """A setting's value as `assistant info` may show it (no password of a URL)."""
    return display_url(value) if isinstance(value, str) and "://" in value else value


def _variable(name: str) -> str:
    return f"ASSISTANT_{name.upper()}"


def _layers(
    environ: Mapping[str, str] | None, overrides: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Origin]]:
    """The settings given by the file, the environment and the flags (each over the one before),
    converted to their types, and where each came from."""
    environ = os.environ if environ is None else environ
    types = _types()
    for name in overrides:
        if name not in types:
            raise ConfigError(f"unknown setting {name!r}")
    environment: dict[str, Any] = {}
    for name in types:
        raw = environ.get(_variable(name))
        if raw is not None and raw != "":
            environment[name] = _convert(name, raw)
    flags = {name: _convert(name, value) for name, value in overrides.items() if value is not None}
    home = flags.get("home") or environment.get("home") or default_home()
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    layers: tuple[tuple[Origin, dict[str, Any]], ...] = (
        ("config.toml", read_config_file(home / CONFIG_FILE)),
        ("environment", environment),
        ("flag", flags),
    )
    for origin, layer in layers:
        values |= layer
        origins |= dict.fromkeys(layer, origin)
    return values, origins


# What an API key may be called in the file: refused with a pointer to the environment.
_SECRET_WORDS = ("key", "secret", "token", "password")


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings a `config.toml` sets, converted to their types; {} when there is no file.

    Keys are checked here, so a mistake is reported with the file and the key: an unknown key,
    a setting under another section's table, a value of the wrong type or not among its choices,
    the home, and anything that looks like a secret.
    """
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except (FileNotFoundError, NotADirectoryError):  # a home that is a file: the home says so
        return {}
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None
    values: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in SECTIONS:
                raise ConfigError(
                    f"{path}: unknown section [{key}] (the sections are {', '.join(SECTIONS)})"
                )
            for name, item in value.items():
                values[name] = _file_value(path, name, item, section=key)
        else:
            values[key] = _file_value(path, key, value, section=None)
    return values


def _file_value(path: Path, name: str, value: Any, section: str | None) -> Any:
    """One value of the file, checked and converted; errors name the file and the key."""
    key = f"[{section}] {name}" if section else name
    types = _types()
    if name not in types and any(word in name.lower() for word in _SECRET_WORDS):
        raise ConfigError(
            f"{path}: {key}: secrets are never read from a file; set ASSISTANT_OPENAI_API_KEY or "
            "ASSISTANT_API_KEY in the environment instead"
        )
    if name not in types:
        raise ConfigError(f"{path}: unknown setting {key!r} (`assistant info --json` lists them)")
    if name == "home":
        raise ConfigError(
            f"{path}: the home cannot be set in its own config file; use ASSISTANT_HOME or --home"
        )
    owner = next(spec.metadata["section"] for spec in fields(Config) if spec.name == name)
    if section is not None and section != owner:
        raise ConfigError(f"{path}: {name} belongs under [{owner}], not [{section}]")
    kind = types[name]
    expected: tuple[type, ...] = {bool: (bool,), int: (int,), float: (int, float)}.get(kind, (str,))
    if (isinstance(value, bool) and bool not in expected) or not isinstance(value, expected):
        raise ConfigError(f"{path}: {key} must be {_KINDS.get(kind, 'text')}, not {value!r}")
    allowed = _choices().get(name)
    if allowed is not None and value not in allowed:
        raise ConfigError(
            f"{path}: {key} must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {value!r}"
        )
    return _convert(name, value)  # an int for a float setting becomes a float


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


@functools.cache
def _types() -> dict[str, Any]:
    """Each setting's type, resolved (the annotations are strings under `__future__`)."""
    return get_type_hints(Config)


@functools.cache
def _choices() -> dict[str, tuple[str, ...]]:
    """The allowed values of each setting that has a `Literal` type."""
    return {name: get_args(kind) for name, kind in _types().items() if get_origin(kind) is Literal}


def _default(name: str) -> Any:
    """A setting's default (the home's is computed now: it follows $XDG_DATA_HOME)."""
    spec = next(f for f in fields(Config) if f.name == name)
    if spec.default_factory is not dataclasses.MISSING:
        return spec.default_factory()
    return spec.default


_KINDS = {int: "a whole number", float: "a number", bool: "true or false"}


def _convert(name: str, raw: Any) -> Any:
    """Turn an environment string (or CLI value) into the setting's type, with a clear error."""
    kind = _types()[name]
    try:
        if kind is Path:
            return Path(raw).expanduser()
        if kind is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return str(raw)  # str, or a Literal of strings (`validate` checks the value)
    except ValueError:
        raise ConfigError(
            f"setting {name} ({_variable(name)}) must be {_KINDS.get(kind, 'text')}, not {raw!r}"
        ) from None
