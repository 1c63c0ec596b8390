"""The ASGI application: the OpenAI-compatible endpoints over one home and one language model.

- `POST /v1/chat/completions` answers the last user message from the documents, with the earlier
  messages as the conversation (`history`), streamed as server-sent events or whole;
- `POST /v1/search` returns the passages only;
- `GET /v1/models` lists the one model.

Every endpoint that touches the model, the embedder or the store goes through the `ModelQueue`;
the guards (API key, body size) run first. The response shapes are `protocol`'s, the message text
is `messages`'. Errors come back as OpenAI error objects: 400 for a request the API does not
allow, 401 without the key, 413 for a body too large, 503 when the queue is full, 500 when the
library fails (its message, written for the user, is kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from assistant.answer.pipeline import Answer, Answerer, AnswerEvent
from assistant.chat.conversation import Folded
from assistant.config import Config
from assistant.errors import AssistantError, InputError
from assistant.index.home import Home
from assistant.index.scope import Scope, resolve_scope
from assistant.llm.base import ChatModel
from assistant.server import protocol
from assistant.server.guards import ApiKeyGuard, BodyLimit
from assistant.server.history import ConversationMemory
from assistant.server.messages import message_text, question_and_turns
from assistant.server.protocol import ChatRequest, ProtocolError, SearchRequest
from assistant.server.queue import EventStream, Idle, ModelQueue, QueueFullError
from assistant.server.settings import ServerSettings

KEEPALIVE_SECONDS = 10.0  # an SSE comment this often while a streamed request waits its turn
RETRY_AFTER_SECONDS = 10  # what a 503 suggests

log = logging.getLogger(__name__)


def create_app(
    config: Config,
    *,
    home: Home | None = None,
    model: ChatModel | None = None,
    settings: ServerSettings | None = None,
) -> Starlette:
    """The application over `home` (default: the config's) and `model` (default: loaded as the
    config says, which may take a while). The caller closes what it passed in; the app stops
    its queue on shutdown."""
    settings = settings or ServerSettings()
    settings.check()
    if home is None:
        home = Home(config)
    if model is None:
        from assistant.llm.loader import load_chat_model

        model = load_chat_model(config)
    endpoints = _Endpoints(Answerer(home, model), ModelQueue(settings.queue_limit))
    middleware = []
    if settings.api_key is not None:
        middleware.append(Middleware(ApiKeyGuard, api_key=settings.api_key))
    middleware.append(Middleware(BodyLimit, limit=settings.max_request_bytes))
    return Starlette(
        routes=[
            Route("/v1/models", endpoints.models, methods=["GET"]),
            Route("/v1/chat/completions", endpoints.chat_completions, methods=["POST"]),
            Route("/v1/search", endpoints.search, methods=["POST"]),
        ],
        middleware=middleware,
        exception_handlers={
            HTTPException: _http_error,
            AssistantError: _library_error,
        },
        lifespan=endpoints.lifespan,
    )


class _Endpoints:
    """The request handlers, over one answerer and its queue."""

    def __init__(self, answerer: Answerer, queue: ModelQueue) -> None:
        self.answerer = answerer
        self.queue = queue
        self.memory = ConversationMemory(answerer)
        self.created = protocol.now()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        yield
        # The waiting requests are dropped; the running one finishes (its stream was cancelled
        # when uvicorn closed the connections, so it stops at its next piece).
        await asyncio.to_thread(self.queue.close)

    async def models(self, request: Request) -> Response:
        return JSONResponse(protocol.model_list(self.answerer.language_model.name, self.created))

    async def search(self, request: Request) -> Response:
        wanted = SearchRequest.parse(await _json(request))
        k = wanted.k or self.answerer.config.top_k
        scope = await self._scope(wanted.scope)
        result = await self.queue.call(
            lambda: self.answerer.retriever.search(wanted.query, k, wanted.mode, scope)
        )
        paths = scope.paths if scope is not None else ()
        return JSONResponse(
            protocol.search_results(result.passages, result.mode, result.milliseconds, paths)
        )

    async def _scope(self, paths: Sequence[str]) -> Scope | None:
        """The request's scope, checked before it waits for the model: a path with nothing
        ingested is a 400 naming it."""
        return await asyncio.to_thread(resolve_scope, paths, self.answerer.home.store)

    async def chat_completions(self, request: Request) -> Response:
        chat = ChatRequest.parse(await _json(request))
        question, turns = question_and_turns(chat.messages)
        scope = await self._scope(chat.scope)

        def answer_events() -> Iterator[Folded | AnswerEvent]:
            conversation = self.memory.conversation(turns)
            conversation.scope = scope
            return conversation.ask(question)

        identifier, created = protocol.completion_id(), protocol.now()
        if chat.stream:
            events = self.queue.stream(answer_events)
            return StreamingResponse(
                _server_sent(_chunks(events, identifier, created, chat)),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        answer = await self.queue.call(lambda: _final(answer_events()))
        return JSONResponse(protocol.completion(identifier, created, message_text(answer), answer))


async def _chunks(
    events: EventStream[Folded | AnswerEvent],
    identifier: str,
    created: int,
    chat: ChatRequest,
) -> AsyncGenerator[dict[str, Any] | None, None]:
    """The chunks of a streamed answer (None: a keep-alive): the role, the model's draft as
    `reasoning_content` while it is generated, then the checked answer as `content` and a last
    chunk with the citations and the grounding (and, if asked, one with the usage). Closed
    early (the client went away), it cancels the answer."""
    yield protocol.chunk(identifier, created, {"role": "assistant", "content": ""})
    final: Answer | None = None
    try:
        async for event in events.events(KEEPALIVE_SECONDS):
            if isinstance(event, Idle):
                yield None
            elif isinstance(event, str):
                if event:
                    yield protocol.chunk(identifier, created, {"reasoning_content": event})
            elif isinstance(event, Answer):
                final = event
    finally:
        events.cancel()
    if final is None:
        raise AssistantError("the answer was stopped before it was checked")
    yield protocol.chunk(identifier, created, {"content": message_text(final)})
    yield protocol.chunk(
        identifier,
        created,
        {},
        "stop",
        citations=protocol.citations(final),
        grounding=protocol.grounding(final),
    )
    if chat.include_usage:
        yield protocol.usage_chunk(identifier, created, final)


async def _server_sent(
    chunks: AsyncGenerator[dict[str, Any] | None, None],
) -> AsyncIterator[str]:
    """Chunks as server-sent events, ending with `[DONE]`; an error after the response has
    started becomes an error event (the status line has already gone out). Closing this (the
    client went away) closes the chunks and so cancels the answer's stream."""
    try:
        async for item in chunks:
            yield ": waiting\n\n" if item is None else f"data: {json.dumps(item)}\n\n"
    except AssistantError as error:
        body = protocol.error_body(str(error), _error_type(error))
        yield f"data: {json.dumps(body)}\n\n"
        return
    except Exception:
        log.exception("a streamed answer failed")
        body = protocol.error_body("the server failed while answering", "server_error")
        yield f"data: {json.dumps(body)}\n\n"
        return
    finally:
        await chunks.aclose()
    yield "data: [DONE]\n\n"


def _final(events: Iterator[Folded | AnswerEvent]) -> Answer:
    """Run an answer's events to the end (on the worker); its checked answer."""
    final = None
    for event in events:
        if isinstance(event, Answer):
            final = event
    if final is None:
        raise AssistantError("the answer ended before it was checked")
    return final


async def _json(request: Request) -> object:
    try:
        return json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ProtocolError("the request body is not valid JSON") from None


def _status(error: AssistantError) -> int:
    if isinstance(error, QueueFullError):
        return 503
    if isinstance(error, InputError):
        return 400
    return 500


def _error_type(error: AssistantError) -> str:
    return {400: "invalid_request_error", 503: "server_busy"}.get(_status(error), "server_error")


async def _library_error(request: Request, error: Exception) -> Response:
    if not isinstance(error, AssistantError):  # registered for AssistantError only
        raise error
    status = _status(error)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return JSONResponse(
        protocol.error_body(str(error), _error_type(error)), status_code=status, headers=headers
    )


async def _http_error(request: Request, error: Exception) -> Response:
    status = error.status_code if isinstance(error, HTTPException) else 500
    detail = error.detail if isinstance(error, HTTPException) else "server error"
    return JSONResponse(
        protocol.error_body(str(detail), "invalid_request_error"), status_code=status
    )
