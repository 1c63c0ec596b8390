"""The interactive chat screen (`assistant chat`): part of the command-line layer.

Reads questions with line editing and history (readline), streams each answer live, then shows
its sources. Slash commands inspect the conversation. Ctrl-C during an answer stops that answer
and returns to the prompt; Ctrl-C or Ctrl-D at the prompt quits. When stdin is not a terminal it
reads one question per line and prints plain answers, for scripts and tests.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from datetime import datetime

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assistant.answer.pipeline import Answer, AnswerEvent
from assistant.chat.conversation import Conversation, Folded
from assistant.cli.render import passages_text, shorten, show_answer

HELP = """\
Ask a question about your documents, or type a command:
  /sources   the passages behind the last answer, in full
  /budget    how the last prompt used the model's context window
  /history   this conversation so far
  /reset     start a new conversation (the session keeps the old one on record)
  /docs      the documents you can ask about
  /model     the language model and the engine running it
  /help      this help
  /exit      leave (Ctrl-D works too)"""
ANSWER_PREVIEW = 160  # characters of an earlier answer shown on resuming and in /history


class ChatScreen:
    """The read-answer loop over one conversation."""

    def __init__(
        self,
        conversation: Conversation,
        console: Console,
        list_documents: Callable[[], list[str]],
        interactive: bool,
        stream: bool = True,
    ) -> None:
        self.conversation = conversation
        self.console = console
        self.list_documents = list_documents
        self.interactive = interactive
        self.stream = stream  # False: only the checked answer, not the model's text as it comes

    def run(self) -> None:
        if self.interactive:
            _enable_line_editing()
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
            return input(self._prompt())
        line = sys.stdin.readline()
        return None if line == "" else line

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


def _enable_line_editing() -> None:
    """Arrow keys and history at the prompt, where the platform has readline."""
    with contextlib.suppress(ImportError):  # Windows has no readline
        import readline  # noqa: F401
