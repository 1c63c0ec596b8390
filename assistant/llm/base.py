"""What every engine shares: the `ChatModel` protocol the answer pipeline talks to, how a
generation went (`GenerationStats`), turning token ids into text pieces, and prompts built with the
model's chat template, counted in its own tokens and checked against its context window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from assistant.config import Config
from assistant.errors import InputError, ModelError

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class GenerationStats:
    """How one `stream` call went. `new_tokens` counts every token decoded, a final EOS included."""

    prompt_tokens: int
    new_tokens: int
    ttft_s: float  # seconds from the call to the first yielded piece
    generation_s: float  # seconds from the call to the end
    stopped: str  # "eos" | "length" | "cancelled" | "incomplete" (a remote stream cut halfway)
    first_token_s: float = 0.0  # seconds from the call to the first decoded token (a piece or not)
    interruption: str | None = None  # why an "incomplete" answer ended early

    @property
    def tokens_per_s(self) -> float:
        """Decode speed after the first token (prefill excluded); 0 when there is too little."""
        decode_seconds = self.generation_s - self.ttft_s
        if self.new_tokens < 2 or decode_seconds <= 0:
            return 0.0
        return (self.new_tokens - 1) / decode_seconds


class IncrementalDecoder:
    """Turns a growing list of token ids into text pieces without ever splitting a character.

    A character may span several byte-level tokens; until its last byte arrives the decoded text
    ends in U+FFFD, so that tail is held back. Decoding the whole answer each time (instead of
    token by token) also keeps the spaces that some tokenizers only render in context.
    """

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._emitted = 0  # characters of the decoded text already handed out

    def push(self, token_id: int) -> str:
        """Add one token; return the new text it completes (possibly empty)."""
        self._ids.append(token_id)
        text = self._decode(self._ids)
        if text.endswith("\ufffd"):
            return ""
        return self._take(text)

    def flush(self) -> str:
        """Whatever is still held back, broken characters included: the answer has ended."""
        return self._take(self._decode(self._ids)) if self._ids else ""

    def _take(self, text: str) -> str:
        piece = text[self._emitted :]
        self._emitted = len(text)
        return piece


class ChatModel(Protocol):
    """What the answerer and the conversation need of an engine: `torch_engine.LanguageModel`
    (torch + transformers, every model and device), `llamacpp.LlamaCppModel`, or
    `openai_engine.OpenAIModel` (a model on an OpenAI-compatible server, `openai:NAME`); `loader`
    picks one."""

    name: str
    context_length: int
    last_stats: GenerationStats | None

    def count_tokens(self, text: str) -> int: ...

    def count_message_tokens(self, messages: Sequence[Mapping[str, str]]) -> int: ...

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> Generator[str, None, None]: ...

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> str: ...

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]: ...

    def time_tokens(self, prompt_ids: list[int], new_tokens: int) -> tuple[float, float]: ...

    def close(self) -> None: ...


class TemplatedModel:
    """What both local engines share: prompts built with the model's chat template and counted in
    its own tokens, checked against the context window before any decoding."""

    _config: Config
    _tokenizer: Any
    context_length: int
    last_stats: GenerationStats | None

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` alone, without any special tokens."""
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def count_message_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        """Tokens of the whole chat-templated prompt, generation prompt included."""
        return len(self.prompt_ids(messages))

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> Generator[str, None, None]:
        raise NotImplementedError

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> str:
        """The whole answer at once."""
        return "".join(self.stream(messages, max_new_tokens=max_new_tokens))

    def time_tokens(self, prompt_ids: list[int], new_tokens: int) -> tuple[float, float]:
        """Seconds of the prompt's pass (to the first new token) and per one-token step after
        it, decoding `new_tokens` tokens greedily whatever they are (an end-of-text token does
        not stop it): what `engines` compares. Needs `new_tokens` >= 2."""
        if new_tokens < 2:
            raise InputError("time_tokens needs at least 2 new tokens")
        started = time.perf_counter()
        for _ in self._token_stream(prompt_ids, new_tokens, started, stop_at_eos=False):
            pass
        stats = self.last_stats
        if stats is None or stats.new_tokens < 2:
            raise ModelError("the engine decoded fewer tokens than asked while being measured")
        steps = (stats.generation_s - stats.first_token_s) / (stats.new_tokens - 1)
        return stats.first_token_s, steps

    def close(self) -> None:
        """Let the engine's resources go (a no-op where garbage collection suffices)."""

    def _token_stream(
        self, prompt_ids: list[int], limit: int, started: float, *, stop_at_eos: bool = True
    ) -> Generator[str, None, None]:
        raise NotImplementedError

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The chat-templated prompt's token ids, generation prompt included."""
        check_messages(messages)
        text = self._tokenizer.apply_chat_template(
            [dict(message) for message in messages], add_generation_prompt=True, tokenize=False
        )
        # The template already holds the special tokens; adding them again would double the BOS.
        return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _fitting_prompt(
        self, messages: Sequence[Mapping[str, str]], max_new_tokens: int | None
    ) -> tuple[list[int], int]:
        """The prompt's token ids and the answer's token limit; InputError if it cannot fit."""
        limit = self._config.max_new_tokens if max_new_tokens is None else max_new_tokens
        if limit < 1:
            raise InputError("max_new_tokens must be at least 1")
        prompt_ids = self.prompt_ids(messages)
        room = self.context_length - limit
        if len(prompt_ids) > room:
            raise InputError(
                f"the prompt has {len(prompt_ids)} tokens but only {max(room, 0)} fit: the "
                f"context is {self.context_length} tokens and {limit} are kept for the answer; "
                "shorten the question or retrieve fewer passages"
            )
        return prompt_ids, limit


def check_messages(messages: Sequence[Mapping[str, str]]) -> None:
    if not messages:
        raise InputError("there are no messages to answer")
    for number, message in enumerate(messages, start=1):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES or not isinstance(content, str):
            raise InputError(
                f"message {number} needs a role ({', '.join(ROLES)}) and a text content"
            )
