"""A small OpenAI-compatible HTTP server on loopback, for the remote engine's fast tests.

A real socket server speaking HTTP/1.1 and server-sent events (what the `openai` client reads),
scripted to misbehave as real servers do: cut a stream halfway, drop connections, hang, refuse a
key, a model or extra fields. It records every request, so a test sees what reached the wire.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """How the server behaves. `mode`: answer | cut (stop after `cut_after` pieces, closing the
    connection mid-body) | drop (close without answering) | hang (answer nothing for
    `hang_seconds`)."""

    pieces: tuple[str, ...] = ("Hello", " world", ".")
    finish: str = "stop"
    mode: str = "answer"
    cut_after: int = 2
    hang_seconds: float = 5.0
    key: str | None = None  # the API key it wants, if any
    models: tuple[str, ...] = ("fake",)
    strict_models: bool = False  # 404 for a model it does not list (llama.cpp accepts any)
    props_context: int | None = None  # llama.cpp's /props n_ctx
    models_context: int | None = None  # vLLM's max_model_len in /v1/models
    prompt_tokens: int = 17  # what its usage reports
    refuse_extensions: bool = False  # 400 for fields beyond OpenAI's (top_k...), as OpenAI does


@dataclass
class Recorded:
    """What the server received."""

    requests: list[tuple[str, dict[str, str], Any]] = field(
        default_factory=list
    )  # headers: lower case

    def chat_requests(self) -> list[tuple[dict[str, str], Any]]:
        return [(h, body) for path, h, body in self.requests if path.endswith("/completions")]


def _chunk(content: str | None, finish: str | None = None) -> dict[str, Any]:
    delta = {"content": content} if content is not None else {}
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    script: Script
    recorded: Recorded

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet

    def do_GET(self) -> None:
        self._record(None)
        if self._misbehaved() or not self._authorized():
            return
        if self.path == "/v1/models":
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "fake"}
                    for name in self.script.models]  # fmt: skip
            if self.script.models_context:
                for entry in data:
                    entry["max_model_len"] = self.script.models_context
            self._json(200, {"object": "list", "data": data})
        elif self.path == "/props" and self.script.props_context:
            self._json(200, {"default_generation_settings": {"n_ctx": self.script.props_context}})
        else:
            self._json(404, {"error": {"message": "File Not Found", "code": 404}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        script = self.script
        if self._misbehaved() or not self._authorized():
            return
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": "File Not Found", "code": 404}})
            return
        if script.strict_models and body.get("model") not in script.models:
            message = f"The model `{body.get('model')}` does not exist."
            self._json(404, {"error": {"message": message, "code": 404}})
            return
        if script.refuse_extensions and "top_k" in body:
            message = "Unrecognized request argument supplied: top_k"
            self._json(400, {"error": {"message": message, "code": 400}})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for number, piece in enumerate(script.pieces):
            if script.mode == "cut" and number == script.cut_after:
                self.wfile.flush()
                self.close_connection = True  # no last chunk: the body ends halfway
                return
            self._event(_chunk(piece))
        self._event(_chunk(None, script.finish))
        usage = {"prompt_tokens": script.prompt_tokens, "completion_tokens": len(script.pieces)}
        self._event({**_chunk(None), "choices": [], "usage": usage})
        self._send_chunk(b"data: [DONE]\n\n")
        self._send_chunk(b"")

    def setup(self) -> None:
        super().setup()
        self.server.connections.append(self.connection)  # type: ignore[attr-defined]

    def _misbehaved(self) -> bool:
        """Dropped the connection, or hung first, as the script says."""
        if self.script.mode == "hang":
            time.sleep(self.script.hang_seconds)
        if self.script.mode in ("drop", "hang"):
            self.close_connection = True
            return True
        return False

    def _record(self, body: Any) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.recorded.requests.append((self.path, headers, body))

    def _authorized(self) -> bool:
        key = self.script.key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._json(401, {"error": {"message": "Invalid API Key", "code": 401}})
        return False

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _event(self, payload: Any) -> None:
        self._send_chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()


@contextmanager
def fake_server(script: Script | None = None) -> Iterator[tuple[str, Recorded]]:
    """Run a server for `script` on a free loopback port; yields its base URL (ending in /v1)
    and what it records."""
    recorded = Recorded()
    handler = type("Handler", (_Handler,), {"script": script or Script(), "recorded": recorded})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    server.connections = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", recorded
    finally:
        server.shutdown()
        server.server_close()
        for connection in server.connections:  # type: ignore[attr-defined]
            with contextlib.suppress(OSError):  # gone as a stopped server's would be
                connection.shutdown(socket.SHUT_RDWR)
