"""`assistant serve`: the OpenAI-compatible HTTP API over your documents (`assistant.server`).

Checks the settings (another host than loopback needs a key), binds the port, loads the model,
then serves until Ctrl-C. The key comes from `--api-key` or `ASSISTANT_API_KEY` and is never
printed.
"""

from __future__ import annotations

from typing import Annotated

import typer

from assistant.cli import command
from assistant.cli.answers import load_model
from assistant.cli.command import (
    DebugOption,
    HomeOption,
    ModelOption,
    handle_errors,
    load_config,
)
from assistant.cli.documents import nothing_ingested
from assistant.index.home import Home
from assistant.server.settings import DEFAULT_HOST, DEFAULT_PORT, DEFAULT_QUEUE_LIMIT


@handle_errors
def serve_command(
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on; any but loopback (127.0.0.1) needs --api-key."
        ),
    ] = DEFAULT_HOST,
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port.")] = DEFAULT_PORT,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="ASSISTANT_API_KEY",
            show_envvar=True,
            show_default=False,
            help="Require `Authorization: Bearer KEY` on every request.",
        ),
    ] = None,
    queue_limit: Annotated[
        int,
        typer.Option(
            "--queue-limit",
            min=0,
            help="Requests that may wait while one is answered; more get 503.",
        ),
    ] = DEFAULT_QUEUE_LIMIT,
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, help="Passages to use.")] = None,
    model: ModelOption = None,
    home: HomeOption = None,
    debug: DebugOption = False,
) -> None:
    """Serve your documents over an OpenAI-compatible HTTP API (for Open WebUI and other
    clients): cited, checked answers at /v1/chat/completions, passages at /v1/search."""
    from assistant.server.serve import listening_socket, serve
    from assistant.server.settings import ServerSettings

    config = load_config(home, debug=debug, model=model, top_k=k)
    settings = ServerSettings(host, port, api_key, queue_limit)
    settings.check()
    assistant_home = Home(config)
    if assistant_home.is_empty():
        nothing_ingested(config, False)
    listening = listening_socket(settings.host, settings.port)
    language_model = load_model(config)
    guarded = "; every request needs the API key" if api_key is not None else ""
    command.errors.print(
        f"Serving your documents at {settings.url} (OpenAI-compatible, model `assistant`)"
        f"{guarded}. Ctrl-C stops.",
        highlight=False,
    )
    serve(config, settings, home=assistant_home, model=language_model, listening=listening)
