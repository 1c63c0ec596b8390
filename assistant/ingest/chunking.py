"""Split documents into chunks sized in the embedding model's tokens.

Structure first: a chunk never spans two sections (or two PDF pages), and it breaks between
paragraphs, then sentences, then lines, then words, in that order of preference. Chunks are
packed to about `target` tokens, start with about `overlap` tokens from the end of the previous
chunk of the same section, and never exceed `limit` tokens (the embedder's max sequence
length): every chunk's text is counted once more at the end and cut again if it is over.
Each chunk keeps its line range or page and its heading path so an answer can cite exactly
where a statement comes from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistant.ingest.blocks import Block
from assistant.ingest.readers import Document
from assistant.text.sentences import sentence_spans

# Counts tokens of many texts at once (batching makes a fast tokenizer much faster).
TokenCounter = Callable[[Sequence[str]], list[int]]


@dataclass(frozen=True)
class Chunk:
    """A retrievable piece of one document."""

    ordinal: int
    text: str
    start_line: int | None
    end_line: int | None
    page: int | None
    headings: tuple[str, ...]
    token_count: int

    @property
    def heading(self) -> str:
        return " > ".join(self.headings)


@dataclass(frozen=True)
class _Unit:
    """The smallest piece we move between chunks: a sentence, line or word run of a block."""

    block: int
    start: int  # character offsets into the block's text
    end: int
    tokens: int  # content tokens, without the counter's per-text overhead


@dataclass(frozen=True)
class _Paragraph:
    units: list[_Unit]
    tokens: int  # the whole block counted at once (more exact than the sum of its units)


@dataclass(frozen=True)
class _Counter:
    """The caller's token counter, reporting content tokens: what it adds to every text
    (special tokens such as [CLS] and [SEP]) is counted once per chunk, not once per piece."""

    count_tokens: TokenCounter
    overhead: int

    def content(self, texts: Sequence[str]) -> list[int]:
        return [max(0, count - self.overhead) for count in self.count_tokens(texts)]


def chunk_document(
    document: Document,
    count_tokens: TokenCounter,
    target: int = 200,
    overlap: int = 30,
    limit: int = 256,
) -> list[Chunk]:
    """The chunks of one document, in reading order, numbered from 0."""
    if limit < 1 or target < 1 or overlap < 0:
        raise ValueError(f"bad chunk sizes: target={target} overlap={overlap} limit={limit}")
    blocks = document.blocks
    live = [index for index, block in enumerate(blocks) if block.text.strip()]
    if not live:
        return []
    sentences = {index: sentence_spans(blocks[index].text, plain=True) for index in live}
    counts = count_tokens(
        [
            "",  # what the counter adds to every text (special tokens such as [CLS] and [SEP])
            *(blocks[index].text for index in live),
            *(blocks[index].text[a:b] for index in live for a, b in sentences[index]),
        ]
    )
    overhead = counts[0]
    counter = _Counter(count_tokens, overhead)
    budget = max(1, min(target, limit) - overhead)  # content tokens per chunk
    whole = dict(zip(live, counts[1 : 1 + len(live)], strict=True))
    sentence_counts = iter(counts[1 + len(live) :])
    paragraphs: dict[int, _Paragraph] = {}
    for index in live:
        text, units = blocks[index].text, []
        for start, end in sentences[index]:
            tokens = max(0, next(sentence_counts) - overhead)
            units += _split_span(index, text, start, end, tokens, counter, budget)
        paragraphs[index] = _Paragraph(units, max(0, whole[index] - overhead))
    groups: list[list[_Unit]] = []
    for section in _sections(blocks, live):
        groups += _pack([paragraphs[index] for index in section], budget, overlap, blocks, counter)
    fitted = _within_limit(groups, blocks, count_tokens, limit)
    return [
        _make_chunk(ordinal, units, tokens, blocks)
        for ordinal, (units, tokens) in enumerate(fitted)
    ]


def _sections(blocks: Sequence[Block], live: list[int]) -> list[list[int]]:
    """Runs of consecutive blocks under the same headings on the same page."""
    sections: list[list[int]] = []
    previous: Block | None = None
    for index in live:
        block = blocks[index]
        if previous is None or (previous.headings, previous.page) != (block.headings, block.page):
            sections.append([])
        sections[-1].append(index)
        previous = block
    return sections


def _trim(text: str, start: int, end: int) -> tuple[int, int] | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


def _split_span(
    block: int, text: str, start: int, end: int, tokens: int, counter: _Counter, budget: int
) -> list[_Unit]:
    """text[start:end] as units of at most `budget` tokens, cut at lines, then words, then
    characters (a long URL or base64 blob is one "word" of hundreds of tokens)."""
    if tokens <= budget or end - start <= 1:
        return [_Unit(block, start, end, tokens)]
    piece = text[start:end]
    spans: list[tuple[int, int]] = []
    for pattern in (r"[^\n]+", r"\S+"):
        found = (
            _trim(text, start + m.start(), start + m.end()) for m in re.finditer(pattern, piece)
        )
        spans = [span for span in found if span]
        if len(spans) > 1:
            break
    else:
        size = math.ceil((end - start) / max(2, math.ceil(tokens / budget)))
        spans = [(low, min(low + size, end)) for low in range(start, end, size)]
    counts = counter.content([text[low:high] for low, high in spans])
    units: list[_Unit] = []
    for (low, high), count in zip(spans, counts, strict=True):
        units += _split_span(block, text, low, high, count, counter, budget)
    return units


def _pack(
    paragraphs: list[_Paragraph],
    budget: int,
    overlap: int,
    blocks: Sequence[Block],
    counter: _Counter,
) -> list[list[_Unit]]:
    """Greedy packing of one section to `budget` tokens: whole paragraphs when they fit, else
    unit by unit. Each chunk after the first starts with the tail of the previous one."""
    groups: list[list[_Unit]] = []
    current: list[_Unit] = []
    tokens = 0
    fresh = False  # `current` holds more than the overlap carried from the previous chunk

    def make_room(needed: int) -> None:
        nonlocal current, tokens, fresh
        if fresh:
            groups.append(current)
            current = _carry(current, min(overlap, budget - needed), blocks, counter)
            fresh = False
        while current and tokens_of(current) + needed > budget:
            current = current[1:]  # too little room for this overlap: shorten it
        tokens = tokens_of(current)

    def tokens_of(units: list[_Unit]) -> int:
        return sum(unit.tokens for unit in units)

    for paragraph in paragraphs:
        if paragraph.tokens <= budget:  # break between paragraphs rather than inside one
            if tokens + paragraph.tokens > budget:
                make_room(paragraph.tokens)
            current = current + paragraph.units
            tokens += paragraph.tokens
            fresh = True
            continue
        for unit in paragraph.units:
            if tokens + unit.tokens > budget:
                make_room(unit.tokens)
            current.append(unit)
            tokens += unit.tokens
            fresh = True
    if fresh:
        groups.append(current)
    return groups


def _carry(
    group: list[_Unit], allowance: int, blocks: Sequence[Block], counter: _Counter
) -> list[_Unit]:
    """The overlap for the next chunk: the last whole units of `group` within `allowance`
    tokens (never all of it), or else the last words of its final unit."""
    carried: list[_Unit] = []
    total = 0
    for unit in reversed(group[1:]):
        if total + unit.tokens > allowance:
            break
        carried.insert(0, unit)
        total += unit.tokens
    if carried or allowance <= 0:
        return carried
    last = group[-1]
    text = blocks[last.block].text
    words = list(re.finditer(r"\S+", text[last.start : last.end]))
    per_word = last.tokens / max(1, len(words))
    keep = min(len(words) - 1, int(allowance / per_word) if per_word else len(words))
    while keep >= 1:  # estimate from the average word, then count the tail for real
        start = last.start + words[-keep].start()
        (tokens,) = counter.content([text[start : last.end]])
        if tokens <= allowance:
            return [_Unit(last.block, start, last.end, tokens)]
        keep = min(keep - 1, int(keep * allowance / tokens))
    return []


def _within_limit(
    groups: list[list[_Unit]], blocks: Sequence[Block], count_tokens: TokenCounter, limit: int
) -> list[tuple[list[_Unit], int]]:
    """Each group with the real token count of its text, halving any group over `limit`.

    Units are counted apart, and a tokenizer may count their concatenation differently, so
    the limit is checked on the final text."""
    if not groups:
        return []
    counts = count_tokens([_text(group, blocks) for group in groups])
    fitted: list[tuple[list[_Unit], int]] = []
    for group, count in zip(groups, counts, strict=True):
        if count <= limit:
            fitted.append((group, count))
            continue
        if len(group) > 1:
            halves = [group[: len(group) // 2], group[len(group) // 2 :]]
        else:
            unit = group[0]
            text = blocks[unit.block].text
            middle = (unit.start + unit.end) // 2
            cut = max(text.rfind(space, unit.start + 1, middle + 1) for space in " \n\t")
            cut = cut if cut > unit.start else middle
            if cut <= unit.start:
                fitted.append((group, count))  # a single character: nothing left to cut
                continue
            first, second = _trim(text, unit.start, cut), _trim(text, cut, unit.end)
            share = unit.tokens // 2
            halves = [
                [_Unit(unit.block, span[0], span[1], share)]
                for span in (first, second)
                if span is not None
            ]
        fitted += _within_limit(halves, blocks, count_tokens, limit)
    return fitted


def _block_spans(units: list[_Unit]) -> dict[int, tuple[int, int]]:
    """The character span each block contributes; a group's units are contiguous per block."""
    spans: dict[int, tuple[int, int]] = {}
    for unit in units:
        low, high = spans.get(unit.block, (unit.start, unit.end))
        spans[unit.block] = (min(low, unit.start), max(high, unit.end))
    return spans


def _text(units: list[_Unit], blocks: Sequence[Block]) -> str:
    spans = _block_spans(units)
    return "\n\n".join(blocks[index].text[low:high] for index, (low, high) in spans.items())


def _make_chunk(ordinal: int, units: list[_Unit], tokens: int, blocks: Sequence[Block]) -> Chunk:
    start_line: int | None = None
    end_line: int | None = None
    for index, (low, high) in _block_spans(units).items():
        block = blocks[index]
        if block.start_line is None or block.end_line is None:
            continue
        if block.end_line - block.start_line == block.text.count("\n"):
            # The block's text is its source lines verbatim: find the exact lines.
            first = block.start_line + block.text.count("\n", 0, low)
            last = block.start_line + block.text.count("\n", 0, high)
        else:  # reflowed text (HTML, a JSONL row): only the block's whole range is known
            first, last = block.start_line, block.end_line
        start_line = first if start_line is None else min(start_line, first)
        end_line = last if end_line is None else max(end_line, last)
    first_block = blocks[units[0].block]
    return Chunk(
        ordinal=ordinal,
        text=_text(units, blocks),
        start_line=start_line,
        end_line=end_line,
        page=first_block.page,
        headings=first_block.headings,
        token_count=tokens,
    )
