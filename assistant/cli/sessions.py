"""`assistant sessions`: list the saved chat sessions, delete one, or export one as a transcript."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from assistant.cli import command
from assistant.cli.command import DebugOption, HomeOption, JsonOption, handle_errors, load_config
from assistant.cli.render import display_path
from assistant.errors import InputError
from assistant.index.home import Home

sessions_app = typer.Typer(help="List chat sessions, delete one, or export one.")


@sessions_app.callback(invoke_without_command=True)
@handle_errors
def sessions_command(
    context: typer.Context,
    delete: Annotated[
        str | None, typer.Option("--delete", help="Delete the session with this name.")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """List chat sessions, or delete one; `assistant sessions export NAME` writes one out."""
    from datetime import datetime

    from assistant.chat.sessions import Sessions

    if context.invoked_subcommand is not None:
        return
    config = load_config(home, debug=debug)
    sessions = Sessions(Home(config).store)
    if delete is not None:
        sessions.delete(delete)
        if as_json:
            print(json.dumps({"deleted": delete}))
        else:
            command.console.print(f"deleted session {escape(delete)}")
        return
    found = sessions.list()
    if as_json:
        print(json.dumps([info.__dict__ for info in found], indent=2))
        return
    if not found:
        command.console.print(
            "[dim]No sessions yet; `assistant chat --session NAME` starts one.[/]"
        )
        return
    table = Table(show_edge=False)
    table.add_column("session")
    table.add_column("turns", justify="right")
    table.add_column("last used")
    for info in found:
        when = datetime.fromtimestamp(info.updated_at).strftime("%Y-%m-%d %H:%M")
        table.add_row(escape(info.name), str(info.turns), when)
    command.console.print(table)


@sessions_app.command("export")
@handle_errors
def sessions_export_command(
    name: Annotated[str, typer.Argument(help="The session to export.")],
    export_format: Annotated[
        str, typer.Option("--format", "-f", help="md (Markdown) or json.")
    ] = "md",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of stdout."),
    ] = None,
    home: HomeOption = None,
    debug: DebugOption = False,
) -> None:
    """Write a session out for sharing: every question and answer, with the sources cited."""
    from assistant.chat.sessions import Sessions
    from assistant.chat.transcript import transcript_text

    config = load_config(home, debug=debug)
    session = Sessions(Home(config).store).find(name)
    text = transcript_text(session, export_format.lower(), display_path)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise InputError(f"cannot write {output}: {error.strerror or error}") from None
    command.errors.print(
        f"wrote {len(session.history)} turn(s) of {escape(name)} to {escape(str(output))}"
    )
