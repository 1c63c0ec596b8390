"""A retrieved passage: one chunk's text with everything needed to cite it.

This is the unit that flows from retrieval into the prompt, the citation checker, the chat and the
evals, so it lives in its own small module that depends on nothing else in the package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Formats whose page is a slide or a chapter and whose lines are paragraphs (`ingest.office`,
# `ingest.ebooks`): their locations name the unit, found by the file's suffix.
_PAGE_UNITS = {".pptx": "slide", ".epub": "chapter"}
_LINE_UNITS = {".docx": "paragraph", ".odt": "paragraph"}


@dataclass(frozen=True)
class Passage:
    """A chunk as retrieved for a query, ranked and scored."""

    chunk_id: int
    text: str
    source: str  # the document's path (or `path#id` for a row of a JSONL corpus)
    start_line: int | None
    end_line: int | None
    page: int | None
    heading: str  # heading path joined with " > ", empty when the document has none
    score: float
    rank: int = 0  # 1-based position in the result list

    @property
    def location(self) -> str:
        """Where to look: `path:12-30`, `path p.3`, or just `path`; `deck.pptx slide 4`,
        `book.epub chapter 2` and `report.docx paragraphs 12-14` for those formats."""
        return self.location_as(self.source)

    def location_as(self, path: str) -> str:
        """The location with the document's path written as `path` (the command line shows it
        relative to the current folder)."""
        return location(self.source, self.page, self.start_line, self.end_line, path)

    def as_dict(self) -> dict[str, object]:
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "source": self.source,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "page": self.page,
            "heading": self.heading,
            "text": self.text,
            "chunk_id": self.chunk_id,
        }


def location(
    source: str,
    page: int | None,
    start_line: int | None,
    end_line: int | None,
    path: str | None = None,
) -> str:
    """Where a passage of `source` is: `notes.md:12-30`, `paper.pdf p.3`, `deck.pptx slide 4`,
    `book.epub chapter 2`, `report.docx paragraphs 12-14`; `path` replaces how the source is
    written (the command line shows it relative to the current folder)."""
    shown = source if path is None else path
    suffix = os.path.splitext(source)[1].lower()
    if page is not None:
        unit = _PAGE_UNITS.get(suffix)
        return f"{shown} {unit} {page}" if unit else f"{shown} p.{page}"
    if start_line is not None:
        span = str(start_line)
        if end_line is not None and end_line != start_line:
            span += f"-{end_line}"
        unit = _LINE_UNITS.get(suffix)
        if unit:
            return f"{shown} {unit}{'s' if '-' in span else ''} {span}"
        return f"{shown}:{span}"
    return shown
