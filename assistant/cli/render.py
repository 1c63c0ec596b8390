"""Drawing answers in the terminal with rich: the live stream, the checked answer, its sources.

Shared by `assistant ask` and `assistant chat`. While the model streams, its raw text is shown
live; when the answer has been checked, the live view is replaced by the checked answer: supported
sentences with the system's citations, unsupported ones dimmed and marked, or the abstention,
and a dim note when the context window cut the passages asked for (`-k`) or the model server broke
off the answer. The words around the answer are `answer.wording`'s, shared with the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

from assistant.answer.wording import (
    CLOSEST_HEADING,
    EXTRACTIVE_NOTE,
    SOURCES_HEADING,
    UNSUPPORTED_MARK,
    flagged,
)
from assistant.index.passage import Passage

if TYPE_CHECKING:  # imported where an answer is drawn: `search` and `docs` need no pipeline
    from assistant.answer.pipeline import Answer, AnswerEvent


def display_path(path: str) -> str:
    """A stored absolute path as a user would type it: relative to the current folder if inside."""
    base, _, fragment = path.partition("#")
    try:
        relative = os.path.relpath(base)
    except ValueError:
        relative = base
    shown = relative if not relative.startswith("..") else base
    return f"{shown}#{fragment}" if fragment else shown


def display_location(passage: Passage) -> str:
    """`Passage.location` with the path as `display_path` shows it (`notes/cache.md:3-9`)."""
    return passage.location_as(display_path(passage.source))


def shorten(text: str, limit: int) -> str:
    """`text` on one line, cut at a word to at most `limit` characters (and ` …`)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + " …"


def answer_text(answer: Answer) -> Text:
    """The checked answer: cited sentences plain, unsupported ones dimmed and marked."""
    if answer.abstained:
        return Text(answer.text, style="yellow")
    text = Text()
    if answer.grounded.reason == "extractive":
        text.append(EXTRACTIVE_NOTE + "\n", style="dim")
    shown = [s for s in answer.grounded.sentences if s.display]
    if not shown:
        return Text(answer.text)
    for position, sentence in enumerate(shown):
        if position:
            text.append(" ")
        if flagged(sentence):
            text.append(sentence.display, style="dim")
            text.append(UNSUPPORTED_MARK, style="dim italic")
        else:
            text.append(sentence.display)
    return text


def sources_text(answer: Answer) -> Text:
    """`Sources:` and one line per cited passage; for an abstention, the closest passages."""
    text = Text()
    cited = answer.cited_passages()
    if cited:
        text.append(SOURCES_HEADING + "\n", style="bold")
        for number, passage in cited:
            text.append(f"  [{number}] ", style="bold cyan")
            text.append(display_location(passage))
            if passage.heading:
                text.append(f"  {passage.heading}", style="dim")
            text.append("\n")
    elif answer.passages:
        text.append(CLOSEST_HEADING + "\n", style="dim")
        for passage in answer.passages[:3]:
            text.append(f"  {display_location(passage)}", style="dim")
            if passage.heading:
                text.append(f"  {passage.heading}", style="dim")
            text.append("\n")
    return text


def cut_note(answer: Answer) -> Text:
    """A dim line when `k` was larger than the model's context window holds; else empty."""
    if answer.k_used >= answer.k_requested:
        return Text("")
    return Text(
        f"k cut from {answer.k_requested} to {answer.k_used}: "
        "the model's context window holds no more passages.\n",
        style="dim",
    )


def incomplete_note(answer: Answer) -> Text:
    """A dim line when the model server broke off the answer; else empty."""
    if not answer.incomplete:
        return Text("")
    return Text(
        f"the model server broke off the answer: {answer.interruption}; what arrived was checked\n",
        style="dim",
    )


def scope_line(paths: Sequence[str]) -> Text:
    """The header of a scoped answer or search, `in: PATH, ...` (dim); empty without a scope."""
    if not paths:
        return Text("")
    return Text("in: " + ", ".join(display_path(path) for path in paths) + "\n", style="dim")


def passages_text(passages: Iterable[Passage]) -> Text:
    """Passages in full, numbered as in the prompt (for /sources)."""
    text = Text()
    for number, passage in enumerate(passages, start=1):
        text.append(f"[{number}] ", style="bold cyan")
        text.append(display_location(passage), style="bold")
        if passage.heading:
            text.append(f"  {passage.heading}", style="dim")
        text.append(f"\n{passage.text}\n\n")
    return text


def show_answer(
    console: Console, events: Iterator[AnswerEvent], *, stream: bool = True
) -> Answer | None:
    """Draw one answer from its events; returns the final `Answer` (None if it never came).

    On a terminal the raw text streams live and is then replaced by the checked answer; otherwise
    (or with `stream=False`, where a terminal shows only a passing spinner) only the checked answer
    is printed. A KeyboardInterrupt stops the stream (the generator is closed, which stops the
    model) and propagates to the caller.
    """
    from assistant.answer.pipeline import Answer, Retrieved

    final: Answer | None = None
    if not stream or not console.is_terminal:
        waiting: AbstractContextManager[object] = (
            console.status("answering…") if console.is_terminal else nullcontext()
        )
        with waiting:
            for event in events:
                if isinstance(event, Answer):
                    final = event
        if final is not None:
            console.print(scope_line(final.scope), end="")
            console.print(answer_text(final))
            console.print(sources_text(final), end="")
            console.print(cut_note(final), end="")
            console.print(incomplete_note(final), end="")
        return final
    streamed = Text(style="dim")
    status = Text("searching your documents…", style="dim italic")
    with Live(Group(status, streamed), console=console, refresh_per_second=12) as live:
        try:
            for event in events:
                if isinstance(event, Retrieved):
                    status = Text(
                        f"found {len(event.passages)} passages; thinking…", style="dim italic"
                    )
                elif isinstance(event, str):
                    streamed.append(event)
                    status = Text("")
                elif isinstance(event, Answer):
                    final = event
                live.update(Group(status, streamed) if final is None else _final(final))
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()
    return final


def _final(answer: Answer) -> Group:
    notes = [note for note in (cut_note(answer), incomplete_note(answer)) if note]
    header = [scope_line(answer.scope)] if answer.scope else []
    return Group(*header, answer_text(answer), Text(""), sources_text(answer), *notes)
