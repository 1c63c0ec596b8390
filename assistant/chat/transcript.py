"""A chat session written out for sharing: Markdown to read, or JSON to process.

Every recorded turn appears, with the answer as it was checked and shown, and the sources the
system cited for it (file, lines or page, heading). A `/reset` inside the session shows as the
start of a new conversation; a stopped answer says so. Nothing here depends on the terminal: how a
stored path is shown is passed in (the CLI shows it relative to the current folder).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from assistant.chat.sessions import RecordedTurn, Session
from assistant.errors import InputError
from assistant.index.passage import location

FORMATS = ("md", "json")


def transcript_dict(session: Session) -> dict[str, Any]:
    """The session as one JSON-ready object: its name and every turn with its citations."""
    return {
        "session": session.name,
        "turns": [
            {
                "question": turn.question,
                "answer": turn.answer,
                "abstained": turn.abstained,
                "interrupted": turn.interrupted,
                "conversation": turn.conversation,
                "created_at": turn.created_at,
                "citations": turn.citations,
            }
            for turn in session.history
        ],
    }


def transcript_markdown(session: Session, show_path: Callable[[str], str] = str) -> str:
    """The session as a Markdown document: one section per turn, its sources listed under it."""
    lines = [f"# Chat session: {session.name}", ""]
    if not session.history:
        lines += ["_No turns yet._", ""]
    conversation = session.history[0].conversation if session.history else 0
    for number, turn in enumerate(session.history, start=1):
        if turn.conversation != conversation:
            lines += ["---", "", "_A new conversation starts here._", ""]
            conversation = turn.conversation
        when = datetime.fromtimestamp(turn.created_at).strftime("%Y-%m-%d %H:%M")
        lines += [f"## {number}. {_one_line(turn.question)}", "", f"_{when}_", ""]
        lines += [*_answer_lines(turn), ""]
        if turn.citations:
            lines += ["Sources:", ""]
            lines += [_citation_line(citation, show_path) for citation in turn.citations]
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def transcript_text(
    session: Session, format_name: str, show_path: Callable[[str], str] = str
) -> str:
    """The session in `format_name` (`md` or `json`), ready to print or write to a file."""
    if format_name == "md":
        return transcript_markdown(session, show_path)
    if format_name == "json":
        return json.dumps(transcript_dict(session), indent=2, ensure_ascii=False) + "\n"
    raise InputError(f"the format must be {' or '.join(FORMATS)}, not {format_name!r}")


def _answer_lines(turn: RecordedTurn) -> list[str]:
    """The answer, then the note when it stopped early (alone when nothing of it was checked)."""
    stopped = "_(stopped before the answer was complete)_"
    if not turn.answer:
        return [stopped]
    return [*turn.answer.splitlines(), *(["", stopped] if turn.interrupted else [])]


def _citation_line(citation: dict[str, Any], show_path: Callable[[str], str]) -> str:
    source = str(citation.get("source", ""))
    where = location(
        source,
        citation.get("page"),
        citation.get("start_line"),
        citation.get("end_line"),
        show_path(source),
    )
    heading = citation.get("heading")
    suffix = f", {heading}" if heading else ""
    return f"- [{citation.get('n', '?')}] `{where}`{suffix}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
