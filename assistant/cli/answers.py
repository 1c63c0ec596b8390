"""The commands that answer questions: `ask` (one question) and `chat` (a conversation).

Both load the language model, take the generation flags, and stop with a hint when nothing is
ingested; `chat` offers to ingest the bundled sample corpus instead. The chat screen itself is
`cli.chat`; drawing an answer is `cli.render`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from assistant.cli import command
from assistant.cli.command import (
    DebugOption,
    HomeOption,
    InOption,
    JsonOption,
    ModelOption,
    busy,
    handle_errors,
    load_config,
)
from assistant.cli.documents import nothing_ingested, print_ingest_summary, sample_corpus
from assistant.cli.render import display_path, show_answer
from assistant.config import Config
from assistant.errors import InputError
from assistant.index.home import Home
from assistant.index.scope import resolve_scope

TemperatureOption = Annotated[
    float | None,
    typer.Option("--temperature", min=0.0, help="0 is greedy (the default); above 0 samples."),
]
MaxTokensOption = Annotated[
    int | None, typer.Option("--max-tokens", min=1, help="Longest answer, in tokens.")
]
NoStreamOption = Annotated[
    bool,
    typer.Option("--no-stream", help="Print only the checked answer, not the model's live text."),
]


def _generation_config(
    home: Path | None, temperature: float | None, max_tokens: int | None, **overrides: Any
) -> Config:
    """The config with the generation flags; a longer --max-tokens than the window keeps free for
    the answer (`answer_reserve`) widens that reserve, or the answer would still stop there."""
    config = load_config(home, temperature=temperature, max_new_tokens=max_tokens, **overrides)
    if max_tokens is not None and max_tokens > config.answer_reserve:
        config = config.replace(answer_reserve=max_tokens)
    return config


def read_question(argument: str | None) -> str:
    """The question given, or read from stdin for `-` or when none is given and stdin is a pipe."""
    if argument is None or argument == "-":
        if argument is None and sys.stdin.isatty():
            raise InputError(
                'give a question: assistant ask "What ...?" (or pipe one in: ... | assistant ask)'
            )
        argument = sys.stdin.read()
    question = argument.strip()
    if not question:
        raise InputError("the question is empty")
    return question


@handle_errors
def ask_command(
    question: Annotated[
        str | None,
        typer.Argument(
            help="Your question, in quotes; `-` (or none, with a pipe) reads it from stdin.",
            show_default=False,
        ),
    ] = None,
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, help="Passages to use.")] = None,
    model: ModelOption = None,
    temperature: TemperatureOption = None,
    max_tokens: MaxTokensOption = None,
    no_stream: NoStreamOption = False,
    within: InOption = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Answer a question from your documents, citing where each statement comes from."""
    from assistant.answer.pipeline import Answerer

    text = read_question(question)
    config = _generation_config(home, temperature, max_tokens, debug=debug, model=model, top_k=k)
    assistant_home = Home(config)
    if assistant_home.is_empty():
        nothing_ingested(config, as_json)
    scope = resolve_scope(within or [], assistant_home.store)  # checked before the model loads
    answerer = Answerer(assistant_home, load_model(config))
    events = answerer.ask(text, scope=scope)
    if as_json:
        from assistant.answer.pipeline import Answer

        answers = [event for event in events if isinstance(event, Answer)]
        print(json.dumps(answers[-1].as_dict(), indent=2))
        return
    show_answer(command.console, events, stream=not no_stream)


def load_model(config: Config) -> Any:
    """Load the language model, with a spinner on a terminal (the first run converts the GGUF)."""
    from assistant.llm.loader import load_chat_model

    with busy("loading the language model…"):
        return load_chat_model(config)


@handle_errors
def chat_command(
    session: Annotated[
        str, typer.Option("--session", "-s", help="Session name: resumes it if it exists.")
    ] = "default",
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, help="Passages to use.")] = None,
    model: ModelOption = None,
    temperature: TemperatureOption = None,
    max_tokens: MaxTokensOption = None,
    no_stream: NoStreamOption = False,
    within: InOption = None,
    home: HomeOption = None,
    debug: DebugOption = False,
) -> None:
    """Talk with your documents: follow-up questions, sources, and memory across sessions."""
    from assistant.answer.pipeline import Answerer
    from assistant.chat.conversation import Conversation
    from assistant.chat.sessions import Sessions
    from assistant.cli.chat import ChatScreen

    config = _generation_config(home, temperature, max_tokens, debug=debug, model=model, top_k=k)
    assistant_home = Home(config)
    interactive = sys.stdin.isatty()
    if assistant_home.is_empty() and not _offer_sample_corpus(assistant_home, interactive):
        raise typer.Exit(1)
    scope = resolve_scope(within or [], assistant_home.store)  # checked before the model loads
    answerer = Answerer(assistant_home, load_model(config))
    sessions = Sessions(assistant_home.store)
    conversation = Conversation(answerer, sessions, sessions.open(session))
    if scope is not None:  # --in replaces the scope the session kept
        conversation.set_scope(scope)
    elif conversation.scope is not None:  # kept by the session: unless forgotten since
        try:
            resolve_scope(conversation.scope.paths, assistant_home.store)
        except InputError as error:
            command.errors.print(
                f"[yellow]This session's scope: {escape(str(error))}. "
                "Searching all your documents.[/]"
            )
            conversation.set_scope(None)

    def list_documents() -> list[str]:
        return [display_path(row.key) for row in assistant_home.store.documents()]

    ChatScreen(
        conversation, command.console, list_documents, interactive, stream=not no_stream
    ).run()


def _offer_sample_corpus(assistant_home: Home, interactive: bool) -> bool:
    """Nothing is ingested: say how to ingest and offer the sample corpus; True if ingested."""
    sample = sample_corpus()
    command.errors.print(f"[yellow]Nothing is ingested in {assistant_home.path} yet.[/]")
    command.errors.print("Ingest your documents first:  assistant ingest ~/Documents/notes")
    if sample is None:
        return False
    command.errors.print(
        f"or try the bundled sample corpus:  assistant ingest {display_path(str(sample))}"
    )
    if not interactive:
        return False
    if not typer.confirm("Ingest the sample corpus now?", default=True):
        return False
    from assistant.ingest.pipeline import IngestSummary, ingest

    with assistant_home.writing():
        for event in ingest(assistant_home, [sample]):
            if isinstance(event, IngestSummary):
                print_ingest_summary(event)
        assistant_home.save_index()
    return True
