"""The OpenAI wire format the server speaks: requests read and checked, responses built as JSON.

Only what answering from documents needs is read from a request: the messages, `stream` and
`stream_options.include_usage`, and our own optional `scope` (as in `/v1/search`): a list of
ingested folders or files, as paths on the server's machine, to search under instead of everywhere.
Sampling settings (`temperature`, `max_tokens`, ...) are accepted and ignored: the server's own
settings decide (greedy by default), as for `assistant ask`, because the checked answer depends on
them. The client's system messages are ignored too: the assistant's rules (answer from the
passages, cite them) are its system prompt.

Responses are OpenAI's `chat.completion` and `chat.completion.chunk` objects with two extra fields
that clients which do not know them skip: `citations` (the passages the answer cites: source,
lines or page, heading, text) and `grounding` (whether the answer abstained and why, the query
searched, the passages retrieved, each sentence's verdict, and `incomplete` with the reason when
the model server behind the assistant broke off the answer: what arrived was checked, and
`finish_reason` stays "stop", since the token limit did not end it). While streaming, the model's
unchecked draft comes as `reasoning_content` (shown as "thinking" by clients that know the field,
such as Open WebUI) and the checked answer as `content` once it has been checked.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args

from assistant.answer.pipeline import Answer
from assistant.config import RetrievalMode
from assistant.errors import InputError
from assistant.index.passage import Passage

MODEL_ID = "assistant"  # the one model `/v1/models` lists: the language model over the documents
ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_SEARCH_K = 100


class ProtocolError(InputError):
    """A request that does not follow the API (HTTP 400)."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """A `POST /v1/chat/completions` body, checked."""

    messages: tuple[Message, ...]
    stream: bool = False
    include_usage: bool = False
    scope: tuple[str, ...] = ()  # search only under these paths; empty: every document

    @classmethod
    def parse(cls, body: object) -> ChatRequest:
        fields = _object(body)
        raw_messages = fields.get("messages")
        if not isinstance(raw_messages, list) or not raw_messages:
            raise ProtocolError("`messages` must be a non-empty list")
        messages = tuple(_message(number, raw) for number, raw in enumerate(raw_messages, 1))
        stream = fields.get("stream", False)
        if not isinstance(stream, bool):
            raise ProtocolError("`stream` must be true or false")
        if fields.get("n", 1) not in (1, None):
            raise ProtocolError("`n` must be 1: the server gives one checked answer")
        options = fields.get("stream_options") or {}
        include_usage = bool(isinstance(options, Mapping) and options.get("include_usage"))
        return cls(messages, stream, include_usage, _scope(fields))


@dataclass(frozen=True)
class SearchRequest:
    """A `POST /v1/search` body, checked: `query`, and optionally `k` (or `top_k`), `mode` and
    `scope`."""

    query: str
    k: int | None = None
    mode: RetrievalMode | None = None
    scope: tuple[str, ...] = ()  # search only under these paths; empty: every document

    @classmethod
    def parse(cls, body: object) -> SearchRequest:
        fields = _object(body)
        query = fields.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ProtocolError("`query` must be a non-empty string")
        k = fields.get("k", fields.get("top_k"))
        if k is not None and (
            isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SEARCH_K
        ):
            raise ProtocolError(f"`k` must be a whole number from 1 to {MAX_SEARCH_K}")
        mode = fields.get("mode")
        modes = get_args(RetrievalMode)
        if mode is not None and mode not in modes:
            raise ProtocolError(f"`mode` must be one of {', '.join(modes)}")
        return cls(" ".join(query.split()), k, mode, _scope(fields))


def _scope(fields: Mapping[str, Any]) -> tuple[str, ...]:
    """The optional `scope`: a list of paths (ingested folders or files) on the server."""
    scope = fields.get("scope")
    if scope is None:
        return ()
    if not isinstance(scope, list) or not all(isinstance(p, str) and p.strip() for p in scope):
        raise ProtocolError("`scope` must be a list of paths (ingested folders or files)")
    return tuple(scope)


def _object(body: object) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ProtocolError("the request body must be a JSON object")
    return body


def _message(number: int, raw: object) -> Message:
    if not isinstance(raw, Mapping):
        raise ProtocolError(f"message {number} must be an object with `role` and `content`")
    role = raw.get("role")
    if role not in ROLES:
        raise ProtocolError(f"message {number} has no valid `role` ({', '.join(ROLES)})")
    return Message(str(role), _content(number, raw.get("content")))


def _content(number: int, content: object) -> str:
    """A message's text: a string, or the text parts of a list of parts (null: empty, as for
    an assistant message that only called tools)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise ProtocolError(f"message {number}: only text content is supported")
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    raise ProtocolError(f"message {number}: `content` must be a string or a list of text parts")


# --- responses ------------------------------------------------------------------------------


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())


def completion(identifier: str, created: int, text: str, answer: Answer) -> dict[str, Any]:
    """The `chat.completion` object of a whole checked answer."""
    return {
        "id": identifier,
        "object": "chat.completion",
        "created": created,
        "model": MODEL_ID,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": usage(answer),
        "citations": citations(answer),
        "grounding": grounding(answer),
    }


def chunk(
    identifier: str,
    created: int,
    delta: Mapping[str, Any],
    finish_reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One `chat.completion.chunk` of a streamed answer (`extra`: fields beside `choices`)."""
    return {
        "id": identifier,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": dict(delta), "finish_reason": finish_reason}],
        **extra,
    }


def usage_chunk(identifier: str, created: int, answer: Answer) -> dict[str, Any]:
    """The last chunk when the client asked for usage: no choices, the token counts."""
    return {
        "id": identifier,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [],
        "usage": usage(answer),
    }


def usage(answer: Answer) -> dict[str, int]:
    """Tokens of the prompt (0 when the answer abstained before any prompt) and of the answer."""
    prompt = answer.budget.total if answer.budget is not None else 0
    generated = answer.timings.tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": generated,
        "total_tokens": prompt + generated,
    }


def citations(answer: Answer) -> list[dict[str, Any]]:
    """The passages the checked answer cites, numbered as its `[n]` markers."""
    return [{"n": number, **passage_fields(passage)} for number, passage in answer.cited_passages()]


def passage_fields(passage: Passage) -> dict[str, Any]:
    """Everything needed to show and find a passage."""
    return {
        "source": passage.source,
        "location": passage.location,
        "start_line": passage.start_line,
        "end_line": passage.end_line,
        "page": passage.page,
        "heading": passage.heading,
        "text": passage.text,
        "score": round(passage.score, 6),
    }


def grounding(answer: Answer) -> dict[str, Any]:
    """How the answer was checked: abstained or not (and why), what was searched, the passages
    the prompt held, and each sentence's verdict; `incomplete` and `interruption` only when the
    model server broke off the answer."""
    cut = {"incomplete": True, "interruption": answer.interruption} if answer.incomplete else {}
    return {
        "abstained": answer.abstained,
        "reason": answer.grounded.reason,
        "query": answer.query,
        "scope": list(answer.scope),
        "retrieved": [
            {"n": number, "source": passage.source, "location": passage.location}
            for number, passage in enumerate(answer.passages, start=1)
        ],
        "sentences": [
            {
                "text": sentence.text,
                "supported": sentence.supported,
                "citations": list(sentence.citations),
            }
            for sentence in answer.grounded.sentences
        ],
        **cut,
    }


def search_results(
    passages: Sequence[Passage], mode: str, milliseconds: float, scope: Sequence[str] = ()
) -> dict[str, Any]:
    """The `POST /v1/search` response: the passages, best first, and the paths searched under
    (empty: every document)."""
    return {
        "object": "list",
        "data": [
            {"object": "passage", "rank": passage.rank, **passage_fields(passage)}
            for passage in passages
        ],
        "mode": mode,
        "scope": list(scope),
        "milliseconds": round(milliseconds, 1),
    }


def model_list(language_model: str, created: int) -> dict[str, Any]:
    """The `GET /v1/models` response: the one model, and the language model behind it."""
    return {
        "object": "list",
        "data": [
            {
                "id": MODEL_ID,
                "object": "model",
                "created": created,
                "owned_by": "assistant",
                "language_model": language_model,
            }
        ],
    }


def error_body(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object, which its clients turn into their exceptions."""
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
