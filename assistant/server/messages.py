"""Chat messages both ways: a checked answer written as a message's text, and a request's messages
read back as the question and the earlier turns of the conversation.

The text is what a chat client shows, so it says what `assistant ask` says, in the same words
(`answer.wording`): the checked sentences with the system's `[n]` citations, unsupported ones
marked, then the cited sources (or, for an abstention, the closest passages). A client sends our
earlier answers back as history; the decorations added here are taken off again, so a turn is
carried forward as `assistant chat` records it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.answer.memory import Turn
from assistant.answer.pipeline import Answer
from assistant.answer.wording import (
    CLOSEST_HEADING,
    EXTRACTIVE_NOTE,
    SOURCES_HEADING,
    UNSUPPORTED_MARK,
    flagged,
)
from assistant.server.protocol import Message, ProtocolError

# A client may fold the streamed draft (`reasoning_content`) into the message it sends back, as
# Open WebUI's `<details type="reasoning">` block or a `<think>` block: not part of the answer.
_DRAFT = re.compile(r"<details\b[^>]*>.*?</details>|<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_FOOTER = re.compile(
    rf"\n\n(?:{re.escape(SOURCES_HEADING)}|{re.escape(CLOSEST_HEADING)})\n.*\Z", re.DOTALL
)


def message_text(answer: Answer) -> str:
    """The checked answer as a chat message: its sentences, then its sources."""
    sources = _sources(answer)
    body = _body(answer)
    return f"{body}\n\n{sources}" if sources else body


def _body(answer: Answer) -> str:
    if answer.abstained:
        return answer.text
    shown = [sentence for sentence in answer.grounded.sentences if sentence.display]
    if not shown:
        return answer.text
    parts = [
        sentence.display + UNSUPPORTED_MARK if flagged(sentence) else sentence.display
        for sentence in shown
    ]
    text = " ".join(parts)
    return f"{EXTRACTIVE_NOTE}\n{text}" if answer.grounded.reason == "extractive" else text


def _sources(answer: Answer) -> str:
    cited = answer.cited_passages()
    if cited:
        lines = [SOURCES_HEADING]
        for number, passage in cited:
            heading = f" — {passage.heading}" if passage.heading else ""
            lines.append(f"[{number}] {passage.location}{heading}")
        return "\n".join(lines)
    if answer.passages:
        lines = [CLOSEST_HEADING]
        for passage in answer.passages[:3]:
            heading = f" — {passage.heading}" if passage.heading else ""
            lines.append(f"- {passage.location}{heading}")
        return "\n".join(lines)
    return ""


def recorded_answer(text: str) -> str:
    """An earlier answer of ours as chat records it: without the draft a client may have kept,
    and the sources, the note and the marks this module added (other text stays as it is)."""
    text = _FOOTER.sub("", _DRAFT.sub("", text).strip())
    text = text.removeprefix(EXTRACTIVE_NOTE + "\n")
    return text.replace(UNSUPPORTED_MARK, "").strip()


def question_and_turns(messages: Sequence[Message]) -> tuple[str, list[Turn]]:
    """The question (the last message, the user's) and the exchanges before it, oldest first.

    Each user message answered by the assistant message after it is one turn; a user message
    left unanswered is dropped, as chat drops an interrupted turn. System, developer and tool
    messages are not part of the conversation here (the module docstring of `protocol` says
    why).
    """
    if not messages or messages[-1].role != "user":
        raise ProtocolError("the last message must be the user's question")
    question = messages[-1].content.strip()
    if not question:
        raise ProtocolError("the question (the last user message) is empty")
    turns: list[Turn] = []
    pending: str | None = None
    for message in messages[:-1]:
        if message.role == "user":
            pending = message.content.strip() or None
        elif message.role == "assistant" and pending is not None:
            turns.append(Turn(pending, recorded_answer(message.content)))
            pending = None
    return question, turns
