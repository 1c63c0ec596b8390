from __future__ import annotations

import json

import pytest

from assistant.chat.sessions import RecordedTurn, Session
from assistant.chat.transcript import transcript_markdown, transcript_text
from assistant.errors import InputError

PAGE = {"n": 2, "source": "/docs/paper.pdf", "page": 4, "heading": None, "start_line": None}
LINES = {"n": 1, "source": "/docs/a.md", "start_line": 7, "end_line": 7, "heading": "A > B"}


def session(*turns: RecordedTurn) -> Session:
    return Session(1, "shared", "", 0, turns[-1].conversation if turns else 1, list(turns))


def turn(question: str, answer: str, citations: list, conversation: int = 1) -> RecordedTurn:  # type: ignore[type-arg]
    return RecordedTurn(question, answer, False, not answer, citations, conversation, 0.0)


def test_markdown_lists_each_answer_with_its_sources() -> None:
    text = transcript_markdown(
        session(turn("What is  A?\n", "A is B. [1] See p. 4. [2]", [LINES, PAGE])),
        show_path=lambda path: path.removeprefix("/docs/"),
    )
    assert "## 1. What is A?" in text
    assert "- [1] `a.md:7`, A > B\n- [2] `paper.pdf p.4`\n" in text


def test_markdown_names_slides_chapters_and_paragraphs_as_answers_do() -> None:
    slide = {"n": 1, "source": "/docs/deck.pptx", "page": 4, "heading": "Risks", "start_line": None}
    paragraphs = {"n": 2, "source": "/docs/r.docx", "page": None, "start_line": 3, "end_line": 5}
    text = transcript_markdown(session(turn("q", "a [1] [2]", [slide, paragraphs])))
    assert "- [1] `/docs/deck.pptx slide 4`, Risks\n- [2] `/docs/r.docx paragraphs 3-5`\n" in text


def test_markdown_marks_new_conversations_and_stopped_answers() -> None:
    text = transcript_markdown(session(turn("q1", "", []), turn("q2", "a2", [], conversation=2)))
    assert text.index("stopped before") < text.index("new conversation") < text.index("## 2. q2")
    assert "Sources:" not in text
    assert "_No turns yet._" in transcript_markdown(session())


def test_an_answer_broken_off_halfway_keeps_what_was_checked_and_says_it_stopped() -> None:
    broken = RecordedTurn("q", "Half of it. [1]", False, True, [LINES], 1, 0.0)
    text = transcript_markdown(session(broken))
    assert text.index("Half of it. [1]") < text.index("_(stopped before the answer was complete)_")
    assert text.index("stopped before") < text.index("Sources:")


def test_json_keeps_every_field_and_other_formats_are_refused() -> None:
    data = json.loads(transcript_text(session(turn("q", "a [1]", [LINES])), "json"))
    assert data["session"] == "shared" and data["turns"][0]["citations"] == [LINES]
    with pytest.raises(InputError, match="md or json"):
        transcript_text(session(), "html")
