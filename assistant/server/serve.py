"""Run the application with uvicorn: `serve` (what `assistant serve` calls) and its parts, which
the tests and the benchmark use to start the same server on a free port.

The socket is bound here, before uvicorn starts, so a port in use or an address this machine does
not have is an error the user can read (uvicorn itself would log it and exit the process).
"""

from __future__ import annotations

import errno
import socket

import uvicorn
from starlette.applications import Starlette

from assistant.config import Config
from assistant.errors import InputError
from assistant.index.home import Home
from assistant.llm.base import ChatModel
from assistant.server.app import create_app
from assistant.server.settings import ServerSettings


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (0: a free port; `getsockname()` tells which)."""
    try:
        address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise InputError(f"cannot listen on {host}: {error.strerror}") from None
    family, kind, protocol_number, _, where = address
    server = socket.socket(family, kind, protocol_number)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        server.bind(where)
    except OSError as error:
        server.close()
        reason = "the port is in use" if error.errno == errno.EADDRINUSE else error.strerror
        raise InputError(f"cannot listen on {host}:{port}: {reason}") from None
    return server


def uvicorn_server(app: Starlette, *, log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for `app` (run it with `run(sockets=[...])`); no `Server:` header."""
    return uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=log_level,
            server_header=False,
            timeout_graceful_shutdown=5,
            lifespan="on",
        )
    )


def serve(
    config: Config,
    settings: ServerSettings,
    *,
    home: Home | None = None,
    model: ChatModel | None = None,
    listening: socket.socket | None = None,
) -> None:
    """Serve the API until interrupted (Ctrl-C). `home`, `model` and the `listening` socket are
    made from `config` and `settings` unless given (the command line binds the socket before
    it loads the model, so a port in use is said at once); home and model are closed at the end
    either way."""
    settings.check()
    home = home or Home(config)
    try:
        if home.is_empty():
            raise InputError(
                f"nothing is ingested in {home.path} yet; run `assistant ingest PATH` first"
            )
        listening = listening or listening_socket(settings.host, settings.port)
        if model is None:
            from assistant.llm.loader import load_chat_model

            model = load_chat_model(config)
        app = create_app(config, home=home, model=model, settings=settings)
        uvicorn_server(app).run(sockets=[listening])
    finally:
        if listening is not None:
            listening.close()
        if model is not None:
            model.close()
        home.close()
