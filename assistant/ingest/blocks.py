"""Blocks: paragraph-sized pieces of a document that remember their lines, page and headings.

A block's text is its source lines joined unchanged, so line i of the text is source line
start_line + i (chunking relies on this to give exact line ranges). Every reader builds its
blocks with `paragraph_blocks` (blank-line separated paragraphs) or `sectioned_blocks` (the same
under known heading lines).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """A paragraph-sized piece of a document and where it sits."""

    text: str
    start_line: int | None
    end_line: int | None
    page: int | None = None
    headings: tuple[str, ...] = ()


def paragraph_blocks(
    lines: list[str], first_line: int, headings: tuple[str, ...], page: int | None = None
) -> list[Block]:
    """Split lines into blank-line separated paragraphs; line numbers start at first_line.

    A block's text is its lines joined unchanged, so line i of the text is source line
    start_line + i (chunking relies on this to give exact line ranges).
    """
    blocks: list[Block] = []
    start: int | None = None
    for offset, line in enumerate([*lines, ""]):
        if line.strip():
            if start is None:
                start = offset
        elif start is not None:
            text = "\n".join(lines[start:offset])
            if page is None:
                blocks.append(
                    Block(text, first_line + start, first_line + offset - 1, None, headings)
                )
            else:
                blocks.append(Block(text, None, None, page, headings))
            start = None
    return blocks


def sectioned_blocks(lines: list[str], headings_at: dict[int, tuple[int, str]]) -> list[Block]:
    """Blocks of a text whose heading lines are known: {line index: (level, title)}.

    Heading markup other than the title line itself (underlines, overlines) must already be
    blanked out by the caller, keeping the line count so line numbers stay true.
    """
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []
    section_start = 0
    for index in [*sorted(headings_at), len(lines)]:
        path = tuple(title for _, title in stack)
        blocks.extend(paragraph_blocks(lines[section_start:index], section_start + 1, path))
        if index == len(lines):
            break
        level, title = headings_at[index]
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, title))
        section_start = index + 1
    return blocks
