"""Citation markers in answer text: find them, keep the valid ones, remove them, write them.

The prompt numbers the passages [1]..[k] and asks the model to cite them, but a small model writes
markers in every shape ("[2]", "[1, 3]", "[1][3]", "[2-4]") and often points at passages that do
not exist. This module only reads and writes the markers; deciding which passage really supports
a sentence is the job of `assistant.grounding.checker`, which re-cites every sentence itself.

A marker is a pair of square brackets holding only passage numbers separated by commas,
semicolons, spaces or a dash for a range, e.g. `[1]`, `[1, 3]`, `[2-4]`, `[2–4]`. Brackets inside
inline code (`like[0]`) are left alone, because there they are indexing, not citing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Passage numbers are small; a range wider than this is a typo, and expanding it would be waste.
_MAX_RANGE = 100

_MARKER = re.compile(r"\[\s*(\d+(?:\s*(?:[-–—]|,|;|\s)\s*\d+)*)\s*\]")
_RANGE = re.compile(r"(\d+)\s*[-–—]\s*(\d+)")
_CODE_SPAN = re.compile(r"`[^`\n]*`")


@dataclass(frozen=True)
class CitationMarker:
    """One bracketed marker found in a text: where it is and the numbers it names, in order."""

    start: int
    end: int
    numbers: tuple[int, ...]

    def valid_numbers(self, passage_count: int) -> tuple[int, ...]:
        """The numbers that name one of passages 1..passage_count."""
        return tuple(number for number in self.numbers if 1 <= number <= passage_count)


def find_markers(text: str) -> list[CitationMarker]:
    """Every citation marker in text, in order (none inside `inline code`)."""
    code_spans = [match.span() for match in _CODE_SPAN.finditer(text)]
    markers = []
    for match in _MARKER.finditer(text):
        if any(low <= match.start() < high for low, high in code_spans):
            continue
        markers.append(CitationMarker(match.start(), match.end(), _numbers(match.group(1))))
    return markers


def _numbers(inside: str) -> tuple[int, ...]:
    """The numbers named between the brackets, ranges expanded, duplicates dropped."""
    numbers: list[int] = []
    position = 0
    for match in _RANGE.finditer(inside):
        numbers.extend(
            int(number) for number in re.findall(r"\d+", inside[position : match.start()])
        )
        low, high = sorted((int(match.group(1)), int(match.group(2))))
        numbers.extend(range(low, min(high, low + _MAX_RANGE) + 1))
        position = match.end()
    numbers.extend(int(number) for number in re.findall(r"\d+", inside[position:]))
    return tuple(dict.fromkeys(numbers))


def cited_numbers(text: str, passage_count: int) -> tuple[int, ...]:
    """The valid passage numbers cited anywhere in text, in order of first mention."""
    numbers = (
        number for marker in find_markers(text) for number in marker.valid_numbers(passage_count)
    )
    return tuple(dict.fromkeys(numbers))


def strip_markers(text: str) -> str:
    """Text with all citation markers removed and the spacing around them tidied.

    `"Caches store keys [1], values [2][3]."` becomes `"Caches store keys, values."`.
    """
    return tidy(_without_markers(text, spaces_before=False))


def remove_markers(text: str) -> str:
    """Text without its citation markers and the whitespace right before each, otherwise as it
    was: unlike `strip_markers` nothing is tidied, so code keeps its indentation.

    `"Caches store keys [1], values [2][3]."` becomes `"Caches store keys, values."`.
    """
    return _without_markers(text, spaces_before=True)


def _without_markers(text: str, *, spaces_before: bool) -> str:
    pieces: list[str] = []
    position = 0
    for marker in find_markers(text):
        piece = text[position : marker.start]
        pieces.append(piece.rstrip() if spaces_before else piece)
        position = marker.end
    pieces.append(text[position:])
    return "".join(pieces)


def tidy(text: str) -> str:
    """Collapse the gaps a removed marker leaves: double spaces, space before punctuation,
    doubled sentence-final punctuation. Line breaks are kept."""
    text = re.sub(r"\(\s*\)", "", text)
    text = re.sub(r"\([ \t]+", "(", text)
    text = re.sub(r"[ \t]+\)", ")", text)
    text = re.sub(r"[ \t]+([.,;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?:[ \t]*[,;:])+", r"\1", text)
    text = re.sub(r"(?<!\.)\.[ \t]*\.(?!\.)", ".", text)  # "fact.[1]." but not an ellipsis
    text = re.sub(r"([,;:])([.!?])", r"\2", text)
    text = re.sub(r"[ \t]{2,}", " ", text)
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def format_markers(numbers: Iterable[int]) -> str:
    """`[1][3]` for (1, 3); the empty string for no numbers."""
    return "".join(f"[{number}]" for number in numbers)


def render_sentence(sentence: str, citations: Sequence[int]) -> str:
    """The sentence (without markers) with its citations placed before its final punctuation.

    `render_sentence("KV caches store keys.", (2, 1))` gives `"KV caches store keys [1][2]."`.
    A sentence ending in a quote or bracket gets them after it. A sentence without citations
    comes back unchanged (but without markers).
    """
    text = strip_markers(sentence)
    if not citations:
        return text
    markers = format_markers(sorted(set(citations)))
    match = re.search(r"[.!?:;]+$", text)
    if match is None:
        return f"{text} {markers}"
    return f"{text[: match.start()].rstrip()} {markers}{text[match.start() :]}"
