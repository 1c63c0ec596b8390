"""What every request passes before it reaches an endpoint: the API key, then the size limit.

Both are plain ASGI middleware, so they run before anything reads the body or parses JSON. The
key is compared through a hash in constant time (neither its content nor its length leaks through
timing), and is never written anywhere. The size limit reads at most `limit` bytes: a body that
says or turns out to be larger is refused with 413 without being read further, and a body within
the limit is handed on to the endpoint as if it had never been read.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.server.protocol import error_body


class ApiKeyGuard:
    """Every HTTP request must carry `Authorization: Bearer <key>`, else 401."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._expected = hashlib.sha256(api_key.encode()).digest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._allowed(scope):
            response = JSONResponse(
                error_body(
                    "a valid API key is required: send `Authorization: Bearer <key>`",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = hashlib.sha256(token.strip()).digest()
                    return hmac.compare_digest(given, self._expected)
        return False


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is None:
            await _refuse(scope, receive, send, 400, "the Content-Length header is not a number")
            return
        if declared > self.limit:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left before sending its body
            body = message.get("body", b"")
            size += len(body)
            if size > self.limit:
                await self._too_large(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _refuse(
            scope,
            receive,
            send,
            413,
            f"the request is larger than the server accepts ({self.limit:,} bytes)",
            "request_too_large",
        )


def _content_length(scope: Scope) -> int | None:
    """The declared body size (0 when not declared); None when the header is not a number."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return 0


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the body already read, then whatever comes next (a disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, message: str, code: str | None = None
) -> None:
    response = JSONResponse(
        error_body(message, "invalid_request_error", code),
        status_code=status,
        headers={"Connection": "close"},  # the unread rest of the body must not be parsed
    )
    await response(scope, receive, send)
