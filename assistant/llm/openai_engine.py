"""The OpenAI-compatible engine: a model served elsewhere (llama.cpp's server, vLLM, Ollama,
LM Studio) behind `--model openai:NAME`, streamed over server-sent events with the `openai` client.

Only generation leaves this process: retrieval, the prompt, the context budget and the citation
check run here as with the local engines, and `stream` has their shape (the prompt checked at the
call, the request sent at the first `next()`, closing the generator closing the connection, which
the server takes as a cancel), so answers, checks, chat, sessions and evals work unchanged.

The context window is `context_cap`, lowered to what the server states (`openai_client`); prompts
are counted by `token_counting`, and the prompt plus the answer's tokens must fit before a request
is sent. When the server reports more prompt tokens than were counted, the difference is kept as a
margin for the next prompts.

A stream cut halfway ends the answer where it was: the pieces already yielded stand, and
`last_stats.stopped` is "incomplete" with `interruption` (on the model and in `last_stats`) saying
why, so the partial answer is still checked, and marked incomplete. Every failure before the first
piece is a `ModelError` saying what to do.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import openai

from assistant.config import Config
from assistant.errors import InputError, ModelError
from assistant.llm.base import GenerationStats, check_messages
from assistant.llm.openai_client import ServerClient, is_context_overflow
from assistant.llm.token_counting import TokenCounter, token_counter
from assistant.models import served_model_name

_FINISH = {"stop": "eos", "length": "length"}


class OpenAIModel:
    """A chat model on an OpenAI-compatible server. Build it with `OpenAIModel.load(config)`."""

    def __init__(self, config: Config, server: ServerClient, counter: TokenCounter) -> None:
        self._config = config
        self._server = server
        self._counter = counter
        self.name = config.model
        self.device = "remote"
        self.base_url = server.base_url  # without a password or query
        self.context_length = config.context_cap
        self.last_stats: GenerationStats | None = None
        self.interruption: str | None = None  # why the last answer ended early, if it did
        self._margin = 0  # tokens the server counted beyond ours in a prompt
        self._extensions = True  # sampling fields beyond OpenAI's (top_k, repetition penalty)

    @classmethod
    def load(cls, config: Config, *, api_key: str | None = None) -> OpenAIModel:
        """Connect to the server of `config.model` (`openai:NAME`) and read its context window.
        `api_key`: default `ASSISTANT_OPENAI_API_KEY` from the environment."""
        if not served_model_name(config.model):
            raise ModelError(
                f"model {config.model!r} names no model: use openai:NAME with the name the server "
                "serves (llama.cpp's server accepts any)"
            )
        server = ServerClient(config, api_key)
        model = cls(config, server, token_counter(config.tokenizer, config.models_dir))
        stated = server.context_window()
        if stated:
            model.context_length = min(config.context_cap, stated)
        return model

    def describe(self) -> str:
        """What runs, where, and how its tokens are counted (never the key)."""
        return (
            f"OpenAI-compatible server at {self.base_url} (model {self._server.served_model!r}, "
            f"{self.context_length}-token context, tokens {self._counter.description})"
        )

    def count_tokens(self, text: str) -> int:
        """Tokens in `text` alone."""
        return self._counter.count(text)

    def count_message_tokens(self, messages: Sequence[Mapping[str, str]]) -> int:
        """Tokens of the whole chat prompt as the server will build it, counted high."""
        check_messages(messages)
        return self._counter.count_messages(messages) + self._margin

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        raise ModelError("a remote model's prompt is built by its server: there are no token ids")

    def time_tokens(self, prompt_ids: list[int], new_tokens: int) -> tuple[float, float]:
        raise ModelError("a remote model is not measured: no engine choice depends on it")

    def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> str:
        """The whole answer at once."""
        return "".join(self.stream(messages, max_new_tokens=max_new_tokens))

    def close(self) -> None:
        """Close the client's connections."""
        self._server.close()

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_new_tokens: int | None = None
    ) -> Generator[str, None, None]:
        """Yield the answer's text pieces as the server streams them; sets `last_stats` at the
        end. The prompt is checked against the window now; the request goes at the first
        `next()`."""
        started = time.perf_counter()
        limit = self._config.max_new_tokens if max_new_tokens is None else max_new_tokens
        if limit < 1:
            raise InputError("max_new_tokens must be at least 1")
        prompt_tokens = self.count_message_tokens(messages)
        room = self.context_length - limit
        if prompt_tokens > room:
            raise InputError(
                f"the prompt has about {prompt_tokens} tokens but only {max(room, 0)} fit: the "
                f"server's context is {self.context_length} tokens and {limit} are kept for the "
                "answer; shorten the question or retrieve fewer passages"
            )
        return self._decode(messages, limit, prompt_tokens, started)

    def _decode(
        self,
        messages: Sequence[Mapping[str, str]],
        limit: int,
        prompt_tokens: int,
        started: float,
    ) -> Generator[str, None, None]:
        new_tokens, first_piece_at, first_token_at, stopped = 0, 0.0, 0.0, "cancelled"
        reported: int | None = None
        finish: str | None = None
        self.interruption = None
        chunks = None
        try:
            chunks = self._open(messages, limit)
            try:
                for chunk in chunks:
                    if chunk.usage is not None:
                        reported = chunk.usage.prompt_tokens
                        new_tokens = chunk.usage.completion_tokens or new_tokens
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    finish = choice.finish_reason or finish
                    first_token_at = first_token_at or time.perf_counter()
                    piece = choice.delta.content if choice.delta is not None else None
                    if piece:
                        new_tokens += 1  # one token a chunk; the final count comes with usage
                        first_piece_at = first_piece_at or time.perf_counter()
                        yield piece
            except openai.APIError as error:  # the stream broke: not retried
                cause = self._server.cause(error)
                if not first_piece_at:
                    raise ModelError(
                        f"the model server at {self.base_url} broke off the answer before any "
                        f"text: {cause}"
                    ) from error
                self.interruption = f"the stream broke off: {cause}"
            if finish is None and self.interruption is None:
                self.interruption = "the server ended the stream without finishing the answer"
            stopped = "incomplete" if finish is None else _FINISH.get(finish, "eos")
            if reported is not None:  # the server's own count: keep what ours missed
                self._margin = max(self._margin, reported - (prompt_tokens - self._margin))
        finally:
            if chunks is not None:
                chunks.close()  # the server stops decoding when the connection closes
            ended = time.perf_counter()
            self.last_stats = GenerationStats(
                prompt_tokens=reported if reported is not None else prompt_tokens,
                new_tokens=new_tokens,
                ttft_s=(first_piece_at or ended) - started,
                generation_s=ended - started,
                stopped=stopped,
                first_token_s=(first_token_at or ended) - started,
                interruption=self.interruption if stopped == "incomplete" else None,
            )

    def _open(self, messages: Sequence[Mapping[str, str]], limit: int) -> Any:
        """The request's stream of chunks, once the server has accepted it. A server that
        refuses the sampling fields beyond OpenAI's (OpenAI's own) is asked again without."""
        try:
            return self._server.chat_stream(self._request(messages, limit))
        except openai.BadRequestError as error:
            if not self._extensions or is_context_overflow(error):
                raise self._server.explain(error) from error
            self._extensions = False
        except openai.APIError as error:
            raise self._server.explain(error) from error
        try:
            return self._server.chat_stream(self._request(messages, limit))
        except openai.APIError as error:
            raise self._server.explain(error) from error

    def _request(self, messages: Sequence[Mapping[str, str]], limit: int) -> dict[str, Any]:
        config = self._config
        request: dict[str, Any] = {
            "model": self._server.served_model,
            "messages": [dict(message) for message in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
            "max_tokens": limit,
            "temperature": config.temperature,
            "seed": config.seed,
        }
        if config.temperature > 0:
            request["top_p"] = config.top_p
        if self._extensions:
            # As the local engines sample: llama.cpp and LM Studio read repeat_penalty, vLLM
            # repetition_penalty, each ignoring the other's; the penalty covers the prompt too.
            # llama.cpp reusing the previous request's cache can flip a greedy answer (see
            # llamacpp.py); our prompts share little beyond the system text anyway.
            request["extra_body"] = {
                "top_k": config.top_k_sampling,
                "min_p": 0.0,
                "repeat_penalty": config.repetition_penalty,
                "repeat_last_n": self.context_length,
                "repetition_penalty": config.repetition_penalty,
                "cache_prompt": False,
            }
        return request
