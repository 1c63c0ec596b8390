"""The chat prompt's input without a terminal: prompt_toolkit fed through a pipe, the history
file written by one session and recalled by the next, multi-line input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from assistant.cli.chat import prompt_session

UP = "\x1b[A"
ALT_ENTER = "\x1b\r"  # what a terminal sends for Alt-Enter, and for Esc then Enter


@pytest.fixture
def typed() -> Iterator:  # type: ignore[type-arg]
    """`typed(history_file, keys)`: what one prompt returns when `keys` are typed at it."""
    with create_pipe_input() as keyboard:

        def prompt(history_file: Path, keys: str) -> str:
            session = prompt_session(
                history_file, colour=False, input=keyboard, output=DummyOutput()
            )
            keyboard.send_text(keys)
            return session.prompt()

        yield prompt


def test_history_is_kept_across_sessions(typed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    history = tmp_path / "chat_history"
    assert typed(history, "What does the KV cache store?\r") == "What does the KV cache store?"
    assert typed(history, "/sources\r") == "/sources"
    assert "What does the KV cache store?" in history.read_text()
    # A new session (a new prompt over the same file): up-arrow walks back through both.
    assert typed(history, UP + "\r") == "/sources"
    assert typed(history, UP + UP + UP + "\r") == "What does the KV cache store?"


def test_enter_sends_and_alt_enter_starts_a_new_line(typed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    history = tmp_path / "chat_history"
    assert typed(history, "Compare these two:" + ALT_ENTER + "a) one" + ALT_ENTER + "b) two\r") == (
        "Compare these two:\na) one\nb) two"
    )
    assert typed(history, "\n") == ""  # Ctrl-J, which some terminals send for Enter, sends too
    assert typed(history, UP + UP + "\r") == "Compare these two:\na) one\nb) two"


def test_a_history_file_that_cannot_be_written_is_no_error(typed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    history = blocker / "chat_history"  # its folder is a file: neither read nor written
    assert typed(history, "first\r") == "first"
    assert not history.exists()
