"""A retrieved passage: one chunk's text with everything needed to cite it.

This is the unit that flows from retrieval into the prompt, the citation checker, the chat and the
evals, so it lives in its own small module that depends on nothing else in the package.
"""

from __future__ import annotations

from dataclasses import dataclass


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
        """Where to look: `path:12-30`, `path p.3`, or just `path`."""
        if self.page is not None:
            return f"{self.source} p.{self.page}"
        if self.start_line is not None:
            if self.end_line is not None and self.end_line != self.start_line:
                return f"{self.source}:{self.start_line}-{self.end_line}"
            return f"{self.source}:{self.start_line}"
        return self.source

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
