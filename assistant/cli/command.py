"""What every command shares: its common options, the consoles it prints to, and `handle_errors`.

Errors the user can fix (`AssistantError`) become one red line and exit code 1 (under `--json`,
one JSON object on stdout); the traceback shows only with `--debug`. The consoles are built again
for each command, as the environment asks at that moment: when the output is not a terminal (a
pipe, a log), lines are not wrapped, so one message stays one line, and it carries no escape codes;
neither does anything with NO_COLOR set. Commands therefore reach them as `command.console` and
`command.errors`, never through a name imported once.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from assistant.config import Config
from assistant.errors import AssistantError

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home", help="Folder holding all state (default: $ASSISTANT_HOME).", show_default=False
    ),
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
InOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--in",
        help="Search only the documents in this ingested folder or file (repeatable).",
        show_default=False,
    ),
]
ModelOption = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Hugging Face id, local folder or .gguf file, or openai:NAME for a model on an "
        "OpenAI-compatible server (ASSISTANT_OPENAI_BASE_URL).",
    ),
]

F = TypeVar("F", bound=Callable[..., Any])


def _console(stderr: bool = False) -> Console:
    """A console as the environment asks now: no styles at all with NO_COLOR (rich alone would
    still write bold and dim), and none into a pipe (rich decides that)."""
    plain = os.environ.get("NO_COLOR", "") != ""
    return Console(stderr=stderr, highlight=False, color_system=None if plain else "auto")


console = _console()
errors = _console(stderr=True)


def _quiet_libraries() -> None:
    """Model loading prints progress bars and warnings a user cannot act on; hide them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF de-quantization bar is plain tqdm
    # transformers reads the variables above when it is imported; only where it already is
    # (tests running commands in-process) must it be told. Importing it here would cost every
    # command, `docs` and `search` too, a second and more (it imports torch).
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
        transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def handle_errors(function: F) -> F:
    """Turn library errors into one clear line and a non-zero exit (traceback with --debug)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global console, errors
        debug = bool(kwargs.get("debug")) or Config.from_environment("debug")
        as_json = bool(kwargs.get("as_json"))  # the command's --json: errors are JSON too
        _quiet_libraries()
        # Built per call: tests swap the streams and the environment between commands.
        console, errors = _console(), _console(stderr=True)
        for stream in (console, errors):
            stream.soft_wrap = not stream.is_terminal
        try:
            return function(*args, **kwargs)
        except AssistantError as error:
            if debug:
                raise
            if as_json:
                print(json.dumps({"error": str(error), "kind": error_kind(error)}))
            else:
                errors.print(f"[bold red]error:[/] {escape(str(error))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            if debug:
                raise
            if as_json:
                print(json.dumps({"error": "interrupted", "kind": "interrupted"}))
            else:
                errors.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def error_kind(error: BaseException) -> str:
    """The `kind` of a JSON error: the exception's class in snake case (`input_error`)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


def load_config(home: Path | None, **overrides: Any) -> Config:
    return Config.load(home=home, **overrides)


def busy(text: str) -> contextlib.AbstractContextManager[Any]:
    """A spinner saying `text` on a terminal; nothing in a pipe or a log."""
    return errors.status(text, spinner="dots") if errors.is_terminal else contextlib.nullcontext()
