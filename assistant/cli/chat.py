"""The interactive chat screen (`assistant chat`): part of the command-line layer.

Reads questions with prompt_toolkit: line editing, a history kept across sessions in the home's
`chat_history` file (up-arrow recalls earlier questions, Ctrl-R searches them), and multi-line
input: Enter sends, Alt-Enter (or Esc then Enter) starts a new line, and a pasted block stays one
question. prompt_toolkit rather than readline because it does all of this the same way on every
platform (Windows has no readline) and needs no rule to guess when a line continues. It streams
each answer live, then shows its sources. Slash commands inspect the conversation. Ctrl-C during
an answer stops that answer and returns to the prompt; Ctrl-C or Ctrl-D at the prompt quits. When
stdin is not a terminal it reads one question per line and prints plain answers, for scripts and
tests (and the history file is neither read nor written).
"""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.formatted_text import FormattedText
from prompt_toolkit.history import FileHistory
from prompt_toolkit.input import Input
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.output import Output
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assistant.answer.pipeline import Answer, AnswerEvent
from assistant.chat.conversation import Conversation, Folded
from assistant.cli.render import display_path, passages_text, shorten, show_answer
from assistant.errors import InputError

HELP = """\
Ask a question about your documents, or type a command:
  /sources   the passages behind the last answer, in full
  /budget    how the last prompt used the model's context window
  /history   this conversation so far
  /reset     start a new conversation (the session keeps the old one on record)
  /docs      the documents you can ask about
  /in PATH   search only the documents in this folder or file (several: /in A B); /in: all
  /model     the language model and the engine running it
  /help      this help
  /exit      leave (Ctrl-D works too)
Enter sends; Alt-Enter (or Esc then Enter) starts a new line. Up-arrow recalls earlier
questions, from earlier sessions too; Ctrl-R searches them."""
ANSWER_PREVIEW = 160  # characters of an earlier answer shown on resuming and in /history
HISTORY_FILE = "chat_history"  # in the home: what was typed at the prompt, every session


class ChatScreen:
    """The read-answer loop over one conversation."""

    def __init__(
        self,
        conversation: Conversation,
        console: Console,
        list_documents: Callable[[], list[str]],
        interactive: bool,
        stream: bool = True,
        history_file: Path | None = None,
    ) -> None:
        self.conversation = conversation
        self.console = console
        self.list_documents = list_documents
        self.interactive = interactive
        self.stream = stream  # False: only the checked answer, not the model's text as it comes
        self.history_file = (
            history_file
            if history_file is not None
            else conversation.answerer.home.path / HISTORY_FILE
        )
        self._read_line: Callable[[], str] = input

    def run(self) -> None:
        if self.interactive:
            self._read_line = self._line_reader()
            self._greet()
        while True:
            try:
                line = self._read()
            except (EOFError, KeyboardInterrupt):
                if self.interactive:
                    self.console.print()
                return
            if line is None:
                return
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                if not self._command(text):
                    return
                continue
            self._answer(text)

    def _read(self) -> str | None:
        if self.interactive:
            return self._read_line()
        line = sys.stdin.readline()
        return None if line == "" else line

    def _line_reader(self) -> Callable[[], str]:
        """prompt_toolkit where both ends are a terminal; else (output into a pipe or a log,
        which prompt_toolkit cannot draw on) `input` with readline, as before."""
        if self.console.is_terminal and sys.stdout.isatty():
            colour = self.console.color_system is not None
            return prompt_session(self.history_file, colour).prompt
        _enable_line_editing()
        return lambda: input(self._prompt())

    def _prompt(self) -> str:
        """Green where colour is wanted; plain with NO_COLOR (no colour system) or into a pipe.
        The \\001 and \\002 markers tell readline the escape codes take no room on the line."""
        if self.console.is_terminal and self.console.color_system is not None:
            return "\001\033[1;32m\002you›\001\033[0m\002 "
        return "you› "

    def _greet(self) -> None:
        session = self.conversation.session
        earlier = session.current()
        self.console.print(
            f"[bold]assistant[/] — session [cyan]{escape(session.name)}[/]. "
            "Ask about your documents; /help lists commands, Ctrl-D leaves."
        )
        if earlier:
            self.console.print(f"[dim]Resuming: {len(earlier)} earlier turn(s).[/]")
            for turn in earlier[-3:]:
                self.console.print(f"[dim]  · {escape(turn.question)}[/]")
                self.console.print(
                    f"[dim]{escape(shorten(turn.answer or '(stopped)', ANSWER_PREVIEW))}[/]"
                )
        scope = self.conversation.scope
        if scope is not None:
            shown = ", ".join(display_path(path) for path in scope.paths)
            self.console.print(f"[dim]Searching only in: {escape(shown)} (/in alone: all)[/]")

    def _answer(self, question: str) -> None:
        events = self.conversation.ask(question)
        try:
            show_answer(self.console, _announce_folds(events, self.console), stream=self.stream)
        except KeyboardInterrupt:
            events.close()
            self.console.print("(stopped)", style="yellow", highlight=False)
        if self.interactive:
            self.console.print()

    def _command(self, text: str) -> bool:
        """Run a slash command; False means leave the chat."""
        name = text.split()[0].lower()
        last = self.conversation.last_answer
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            self.console.print(HELP, highlight=False)
        elif name == "/sources":
            if last is None or not last.passages:
                self.console.print("[dim]No answer with sources yet.[/]")
            else:
                self.console.print(passages_text(last.passages))
        elif name == "/budget":
            self._budget(last)
        elif name == "/history":
            self._history()
        elif name == "/reset":
            self.conversation.reset()
            self.console.print("[dim]New conversation; earlier turns stay in the session.[/]")
        elif name == "/model":
            self._model()
        elif name == "/in":
            self._search_in(text.split(maxsplit=1)[1] if len(text.split()) > 1 else "")
        elif name == "/docs":
            documents = self.list_documents()
            for document in documents:
                self.console.print(f"  {escape(document)}")
            self.console.print(f"[dim]{len(documents)} documents[/]")
        else:
            self.console.print(
                f"[yellow]Unknown command {escape(name)}.[/] Type /help for the list."
            )
        return True

    def _search_in(self, argument: str) -> None:
        """`/in PATH...`: search only there from now on (quote a path with spaces); `/in` alone:
        every document again. A path with nothing ingested is named and the scope kept."""
        try:
            scope = self.conversation.search_in(shlex.split(argument))
        except (InputError, ValueError) as error:  # ValueError: an unclosed quote
            self.console.print(f"[yellow]{escape(str(error))}[/]")
            return
        if scope is None:
            self.console.print("[dim]Searching all your documents.[/]")
        else:
            shown = ", ".join(display_path(path) for path in scope.paths)
            self.console.print(f"[dim]Searching only in: {escape(shown)}[/]")

    def _budget(self, last: Answer | None) -> None:
        if last is None or last.budget is None:
            self.console.print("[dim]No prompt yet: ask a question first.[/]")
            return
        budget = last.budget.as_dict()
        table = Table(title="Context window (tokens)", show_edge=False)
        table.add_column("part")
        table.add_column("tokens", justify="right")
        for part in ("system", "passages", "summary", "recent", "question", "overhead"):
            table.add_row(part, str(budget.get(part, 0)))
        table.add_row("[bold]prompt total[/]", f"[bold]{budget['total']}[/]")
        table.add_row("reserved for the answer", str(budget["reserved_answer"]))
        table.add_row("window", str(budget["window"]))
        self.console.print(table)

    def _model(self) -> None:
        """The model object in use: its engine (class), name, device, and the torch engine's
        measured choices (`plan`) when it has them. Read defensively: engines differ."""
        model = self.conversation.language_model
        engine = f"{type(model).__name__} ({type(model).__module__})"
        self.console.print(f"[bold]model[/]  {escape(str(getattr(model, 'name', '?')))}")
        self.console.print(f"[bold]engine[/] {escape(engine)}")
        device = getattr(model, "device", None)
        if device is not None:
            self.console.print(f"[bold]device[/] {escape(str(device))}")
        choices = getattr(getattr(model, "plan", None), "choices", None)
        if isinstance(choices, dict):
            for name, choice in choices.items():
                describe = getattr(choice, "describe", None)
                line = describe() if callable(describe) else str(choice)
                self.console.print(f"  {escape(str(name))}: {escape(str(line))}")

    def _history(self) -> None:
        session = self.conversation.session
        turns = session.current()
        if session.summary:
            self.console.print(f"[bold]Summary of earlier turns:[/] {escape(session.summary)}")
        if not turns:
            self.console.print("[dim]No turns yet.[/]")
        for number, turn in enumerate(turns, start=1):
            when = datetime.fromtimestamp(turn.created_at).strftime("%H:%M")
            folded = " [dim](in summary)[/]" if number <= session.folded else ""
            self.console.print(f"[bold]{number}.[/] [dim]{when}[/] {escape(turn.question)}{folded}")
            self.console.print(f"   {escape(shorten(turn.answer or '(stopped)', ANSWER_PREVIEW))}")


def _announce_folds(
    events: Iterator[Folded | AnswerEvent], console: Console
) -> Iterator[AnswerEvent]:
    for event in events:
        if isinstance(event, Folded):
            console.print(f"[dim](folded {event.turns} older turn(s) into the summary)[/]")
            continue
        yield event


class _History(FileHistory):
    """The history file, or only this session's history when the file cannot be read or
    written (a read-only home): the prompt never fails over its history."""

    def load_history_strings(self) -> Iterable[str]:
        try:
            return list(super().load_history_strings())
        except (OSError, UnicodeDecodeError):
            return []

    def store_string(self, string: str) -> None:
        with contextlib.suppress(OSError):
            super().store_string(string)


def prompt_session(
    history_file: Path,
    colour: bool,
    input: Input | None = None,
    output: Output | None = None,
) -> PromptSession[str]:
    """The chat's prompt: history in `history_file` (shared by all sessions, newest last),
    Enter sends, Alt-Enter or Esc then Enter starts a new line (a terminal sends the same keys for
    both). `input` and `output` are for tests (a pipe instead of the terminal)."""
    bindings = KeyBindings()

    @bindings.add("enter")
    def _send(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    @bindings.add("escape", "enter")
    def _new_line(event: KeyPressEvent) -> None:
        event.current_buffer.insert_text("\n")

    # Green where colour is wanted; prompt_toolkit itself draws nothing in colour with NO_COLOR.
    message = FormattedText([("bold ansigreen" if colour else "", "you›"), ("", " ")])
    return PromptSession(
        message,
        history=_History(str(history_file)),
        multiline=True,  # the bindings above decide what Enter does
        key_bindings=bindings,
        prompt_continuation="   · ",
        enable_history_search=False,  # up-arrow walks the history; Ctrl-R searches it
        input=input,
        output=output,
    )


def _enable_line_editing() -> None:
    """Arrow keys and history at the prompt, where the platform has readline."""
    with contextlib.suppress(ImportError):  # Windows has no readline
        import readline  # noqa: F401
