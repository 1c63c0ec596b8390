"""Tests for assistant.cli.render: what `assistant ask` and `assistant chat` print for an answer."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import pytest
from rich.console import Console

from assistant.answer.pipeline import Answer, Timings
from assistant.cli.render import display_location, shorten, show_answer
from assistant.grounding.checker import GroundedAnswer, SentenceCheck
from assistant.index.passage import Passage

SENTENCE = "The KV cache stores the keys and values of all previous tokens."


def answer(k_requested: int, k_used: int) -> Answer:
    check = SentenceCheck(SENTENCE, True, (1,), (1,), 0.9, True, f"{SENTENCE} [1]")
    grounded = GroundedAnswer(f"{SENTENCE} [1]", False, None, (check,), SENTENCE)
    passage = Passage(1, SENTENCE, "kv-cache.md", 3, 3, None, "The KV cache", 1.0, 1)
    return Answer(
        "What does the KV cache store?",
        "What does the KV cache store?",
        grounded,
        (passage,),
        "scripted",
        k_requested=k_requested,
        k_used=k_used,
    )


def printed(shown: Answer, terminal: bool) -> str:
    """What `show_answer` prints, without colours: live on a terminal, at the end otherwise."""
    output = io.StringIO()
    console = Console(file=output, width=120, force_terminal=terminal, color_system=None)
    show_answer(console, iter([shown]))
    return output.getvalue()


@pytest.mark.parametrize("terminal", [False, True])
def test_a_k_cut_by_the_context_window_is_said(terminal: bool) -> None:
    text = printed(answer(100_000, 18), terminal)
    assert f"{SENTENCE} [1]" in text
    note = "k cut from 100000 to 18: the model's context window holds no more passages."
    assert text.index("Sources:") < text.index(note)  # last, under the sources


@pytest.mark.parametrize("terminal", [False, True])
def test_a_k_used_as_asked_needs_no_note(terminal: bool) -> None:
    assert "cut" not in printed(answer(5, 5), terminal)


@pytest.mark.parametrize("terminal", [False, True])
def test_an_answer_the_model_server_broke_off_says_so_in_one_line(terminal: bool) -> None:
    cut = replace(
        answer(5, 5), timings=Timings(incomplete=True), interruption="the stream broke off: reset"
    )
    text = printed(cut, terminal)
    note = (
        "the model server broke off the answer: the stream broke off: reset; what arrived was "
        "checked\n"
    )
    assert f"{SENTENCE} [1]" in text and text.index("Sources:") < text.index(note)
    assert "broke off" not in printed(answer(5, 5), terminal)


def test_without_streaming_a_terminal_gets_only_the_checked_answer() -> None:
    output = io.StringIO()
    console = Console(file=output, width=120, force_terminal=True, color_system=None)
    events = iter(["RAW MODEL TEXT ", "as it comes", answer(5, 5)])
    shown = show_answer(console, events, stream=False)
    text = output.getvalue()
    assert shown is not None and f"{SENTENCE} [1]" in text and "Sources:" in text
    assert "RAW MODEL TEXT" not in text and "searching your documents" not in text

    streamed = io.StringIO()
    live = Console(file=streamed, width=120, force_terminal=True, color_system=None)
    show_answer(live, iter(["RAW MODEL TEXT ", answer(5, 5)]))
    assert "searching your documents" in streamed.getvalue()  # the default: the live view


def test_a_location_shows_the_path_as_typed_with_its_lines_or_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    source = str(tmp_path / "notes" / "cache.md")

    def at(start: int | None, end: int | None, page: int | None = None) -> Passage:
        return Passage(1, "text", source, start, end, page, "", 1.0)

    assert display_location(at(3, 9)) == "notes/cache.md:3-9"
    assert display_location(at(3, 3)) == "notes/cache.md:3"
    assert display_location(at(None, None, page=2)) == "notes/cache.md p.2"
    assert display_location(at(None, None)) == "notes/cache.md"
    assert at(3, 9).location == f"{source}:3-9"  # the library's own form keeps the full path


def test_shorten_puts_text_on_one_line_and_cuts_at_a_word() -> None:
    assert shorten("a  short\nline", 40) == "a short line"
    assert shorten("the key and value cache", 12) == "the key and …"
