"""Which engine runs the language model: the one measured faster on this CPU.

Two engines can run a GGUF model on the CPU: ours (`generation.LanguageModel`, torch with the
paths `kernel_plan` measured) and llama.cpp (`llamacpp.LlamaCppModel`, through the xllamacpp
package). Neither is faster everywhere: ours reads a long prompt sooner where torch has AVX-512
kernels (and our attention kernel runs), while llama.cpp's C steps decode faster on AVX2-only CPUs
(`evals/README.md`, one table per CPU class). So with `engine=auto` the first load of a model on
a CPU loads both, times each on the same prompt (the prompt's pass and one-token steps, decoding a
fixed number of tokens whatever they are), and keeps the engine that would answer a typical
question sooner: a `TYPICAL_PROMPT`-token prompt and a `TYPICAL_ANSWER`-token answer. The
measurement is cached (`calibration`) with the CPU, the library versions and the model file, so
later loads start the chosen engine directly. llama.cpp's step threads (one, or every core) are
measured the same way.

A model named `openai:NAME` runs on an OpenAI-compatible server instead (`openai_engine`):
nothing is measured for it.

Everything after the engine (answers, checks, chat, evals) is the same whichever runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.calibration import CalibrationCache, Choice, fastest, key_of
from assistant.config import Config
from assistant.devices import available_cores
from assistant.errors import ModelError
from assistant.models import resolve_language_model, served_model_name

if TYPE_CHECKING:
    from assistant.llm.base import ChatModel

TYPICAL_PROMPT = 1000  # tokens: system rules, five passages and a question
TYPICAL_ANSWER = 100  # tokens
MEASURE_PROMPT = 384  # tokens of the prompt each engine reads when measured
MEASURE_STEPS = 24  # tokens each engine decodes when measured
MEASURE_ROUNDS = 2  # turns each engine takes; its best counts


@dataclass(frozen=True)
class EngineStatus:
    """Whether llama.cpp can run the configured model here, and if not, why."""

    llamacpp_usable: bool
    reason: str


def llamacpp_status(config: Config) -> EngineStatus:
    """llama.cpp needs the xllamacpp package, the CPU and a .gguf model file."""
    if served_model_name(config.model) is not None:
        return EngineStatus(False, "the model runs on an OpenAI-compatible server")
    if importlib.util.find_spec("xllamacpp") is None:
        return EngineStatus(False, "the xllamacpp package is not installed")
    if config.device not in ("cpu", "auto"):
        return EngineStatus(False, f"llama.cpp runs on the CPU here, not on {config.device}")
    if config.device == "auto":
        from assistant.devices import choose_device

        # Asks torch only where a GPU could be present (`choose_device`): `info` stays torch-free.
        if choose_device("auto") != "cpu":
            return EngineStatus(False, "a CUDA GPU is present: the torch engine uses it")
    try:
        source = resolve_language_model(config.model)
    except ModelError as error:
        return EngineStatus(False, str(error))
    if source.gguf_file is None:
        return EngineStatus(False, "the model is not a .gguf file")
    return EngineStatus(True, "")


def load_chat_model(config: Config) -> ChatModel:
    """The engine `config.engine` names (`torch`, `llamacpp`), or with `auto` the one measured
    faster here (measured at the first load, then read from the cache); for an `openai:NAME`
    model, its server."""
    if served_model_name(config.model) is not None:
        from assistant.llm.openai_engine import OpenAIModel

        return OpenAIModel.load(config)
    status = llamacpp_status(config)
    if config.engine == "torch":
        return _torch(config)
    if config.engine == "llamacpp":
        if not status.llamacpp_usable:
            raise ModelError(f"the llamacpp engine cannot run here: {status.reason}")
        return _llamacpp(config, cached_choice(config))
    if not status.llamacpp_usable:
        return _torch(config)
    choice = cached_choice(config)
    if choice is not None:
        return _torch(config) if choice.chosen == "torch" else _llamacpp(config, choice)
    return _measure_and_choose(config)


def _torch(config: Config) -> ChatModel:
    """Our torch engine (imported here: llama.cpp needs no torch, and importing it takes a
    second of a one-shot command's start)."""
    from assistant.llm.torch_engine import LanguageModel

    return LanguageModel.load(config)


def engine_key(config: Config) -> str:
    """The cache key of the engine choice: this machine, the model file, the cores."""
    source = resolve_language_model(config.model)
    path = Path(source.location) / str(source.gguf_file)
    status = path.stat()
    return key_of(
        "engine",
        model=str(path),
        size=status.st_size,
        mtime=status.st_mtime_ns,
        cores=available_cores(),
        context=config.context_cap,
    )


def cached_choice(config: Config) -> Choice | None:
    """The engine measured for this configuration earlier, if any."""
    entry = CalibrationCache(config.models_dir).get(engine_key(config))
    return None if entry is None else entry.get("engine")


def _llamacpp(config: Config, choice: Choice | None) -> ChatModel:
    """llama.cpp as measured: the weights file and step threads of the chosen candidate (or,
    forced without a measurement, the model's own file with every core)."""
    from assistant.llm.llamacpp import LlamaCppModel

    name = choice.chosen if choice is not None and choice.chosen != "torch" else "llamacpp"
    weights_file, step_threads = _candidate(config, name)
    return LlamaCppModel.load(
        config, step_threads=config.step_threads or step_threads, weights_file=weights_file
    )


def _candidate(config: Config, name: str) -> tuple[Path | None, int]:
    """A llama.cpp candidate's weights file and step threads, from its name:
    `llamacpp[-q8_0][/THREADS]`."""
    from assistant.llm.weights import eight_bit_gguf

    base, _, threads = name.partition("/")
    weights_file = None
    if base.endswith("-q8_0"):
        weights_file = eight_bit_gguf(resolve_language_model(config.model), config.models_dir)
    return weights_file, int(threads) if threads else available_cores()


def _measure_and_choose(config: Config) -> ChatModel:
    """Load both engines, time each on the same prompt, keep the faster one (cached).

    llama.cpp is tried with the model's file and, for a Q4_1 file, its Q8_0 copy
    (`weights.eight_bit_gguf`), each with its steps on every core and on one. Each candidate
    takes `MEASURE_ROUNDS` turns; one 1.5x slower than the best after the first turn stops.
    """
    from assistant.llm.llamacpp import LlamaCppModel
    from assistant.llm.torch_engine import LanguageModel
    from assistant.llm.weights import eight_bit_gguf

    engines: dict[str, ChatModel] = {"torch": LanguageModel.load(config)}
    cores = available_cores()
    files: dict[str, Path | None] = {"llamacpp": None}
    with contextlib.suppress(OSError, ValueError):  # no copy: the model's own file only
        copy = eight_bit_gguf(resolve_language_model(config.model), config.models_dir)
        if copy is not None:
            files["llamacpp-q8_0"] = copy
    for base, weights_file in files.items():
        for threads in sorted({cores, 1}, reverse=True):
            name = base if threads == cores else f"{base}/{threads}"
            try:
                engines[name] = LlamaCppModel.load(
                    config, step_threads=threads, weights_file=weights_file
                )
            except ModelError:
                continue  # llama.cpp cannot load this file: the others run it
    prompt_ids = measuring_prompt(engines["torch"], MEASURE_PROMPT)
    seconds = dict.fromkeys(engines, math.inf)
    for round_number in range(MEASURE_ROUNDS):  # turns, so a busy moment hits all alike
        best = min(seconds.values())
        for name, engine in engines.items():
            if round_number and seconds[name] > 1.5 * best:
                continue
            measured = _typical_seconds(engine.time_tokens(prompt_ids, MEASURE_STEPS))
            seconds[name] = min(seconds[name], measured)
    chosen = fastest(seconds, "torch")
    choice = Choice(
        "engine",
        chosen,
        seconds,
        f"measured: seconds for a {TYPICAL_PROMPT}-token prompt and a "
        f"{TYPICAL_ANSWER}-token answer",
    )
    CalibrationCache(config.models_dir).put(engine_key(config), {"engine": choice})
    for name, engine in engines.items():
        if name != chosen:
            engine.close()
    return engines[chosen]


def _typical_seconds(times: tuple[float, float]) -> float:
    prompt_seconds, step_seconds = times
    return prompt_seconds * TYPICAL_PROMPT / MEASURE_PROMPT + step_seconds * TYPICAL_ANSWER


def measuring_prompt(model: ChatModel, tokens: int) -> list[int]:
    """A chat prompt of about `tokens` tokens: this package's own prompt files, repeated."""
    from assistant.prompts import PACKAGE_PROMPTS

    prose = " ".join(
        path.read_text(encoding="utf-8") for path in sorted(PACKAGE_PROMPTS.glob("*.md"))
    ).split()
    words = list(prose)
    while model.count_tokens(" ".join(words)) < tokens:
        words.extend(prose)
    words = words[: len(words) * tokens // model.count_tokens(" ".join(words))]
    messages = [
        {"role": "system", "content": "Answer from the passage."},
        {"role": "user", "content": " ".join(words) + "\n\nSummarize the passage."},
    ]
    return model.prompt_ids(messages)


def measure_again(config: Config) -> ChatModel:
    """Forget what was measured in this models folder and load the model, measuring the engine
    and kernels anew (after a busy moment, or when the machine changed in a way the cache key
    does not see)."""
    CalibrationCache(config.models_dir).clear()
    return load_chat_model(config)


def describe(config: Config) -> str:
    """The engine `assistant info` reports: what runs and why, without loading a model (nor
    asking a server anything)."""
    if served_model_name(config.model) is not None:
        from assistant.llm.openai_client import display_url

        return (
            f"openai (an OpenAI-compatible server at {display_url(config.openai_base_url)}, "
            f"model {served_model_name(config.model)!r})"
        )
    if config.engine != "auto":
        return f"{config.engine} (forced by ASSISTANT_ENGINE)"
    status = llamacpp_status(config)
    if not status.llamacpp_usable:
        return f"torch (llama.cpp: {status.reason})"
    choice = cached_choice(config)
    if choice is None:
        return "measured at the first question (torch or llama.cpp, whichever is faster here)"
    return choice.describe()
