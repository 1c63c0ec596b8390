"""The `assistant` command line: the typer app, `--version`, and every command in help order.

Each command is a thin layer over a library call and lives with its group: `documents` (ingest,
search, docs, forget, reindex, repair), `answers` (ask, chat), `system` (info, calibrate),
`sessions` and `evaluate` (`assistant eval`). What they share (the common options, the consoles,
`handle_errors`) is `command`. Only this module puts them together, so nothing imports it back.
"""

from __future__ import annotations

from typing import Annotated

import typer

from assistant.cli import answers, documents, serve, system
from assistant.cli.evaluate import eval_app
from assistant.cli.sessions import sessions_app

app = typer.Typer(
    help="A local, private assistant that answers from your documents and cites its sources.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion for the user's shell
    pretty_exceptions_enable=False,
)


def _package_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("assistant")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        print(f"assistant {_package_version()}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    pass


# The order here is the order of `assistant --help`.
app.command("ingest")(documents.ingest_command)
app.command("ask")(answers.ask_command)
app.command("chat")(answers.chat_command)
app.command("search")(documents.search_command)
app.command("docs")(documents.docs_command)
app.command("forget")(documents.forget_command)
app.command("reindex")(documents.reindex_command)
app.command("info")(system.info_command)
app.command("calibrate")(system.calibrate_command)
app.command("repair")(documents.repair_command)
app.command("serve")(serve.serve_command)
app.add_typer(sessions_app, name="sessions")
app.add_typer(eval_app, name="eval")
