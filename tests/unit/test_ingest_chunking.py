"""Tests for assistant.ingest.chunking, with a whitespace word counter as the tokenizer.

The properties every chunking must have (within the limit, near the target, overlapping
inside a section and never across one, line ranges that contain the text, ordinals 0..n-1)
are checked on documents read by the real readers, so the two modules are tested together
the way ingest uses them. One end-to-end test uses the bundled embedder's real tokenizer.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from assistant.ingest.blocks import Block
from assistant.ingest.chunking import Chunk, TokenCounter, chunk_document
from assistant.ingest.readers import Document, read_documents

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "corpora" / "sample"


def words(texts: Sequence[str]) -> list[int]:
    """The fake tokenizer: one token per whitespace-separated word."""
    return [len(text.split()) for text in texts]


def read_one(name: str, content: str | bytes) -> Document:
    data = content.encode("utf-8") if isinstance(content, str) else content
    (document,) = list(read_documents(Path("/docs") / name, data, "hash"))
    return document


def document_of(*blocks: Block) -> Document:
    return Document("key", "key", "text", "Title", blocks)


def sentence(label: str, length: int = 8) -> str:
    """A sentence of exactly `length` words, the first of which is `label`."""
    return " ".join([label.capitalize(), *(f"w{label}{n}" for n in range(1, length - 1))]) + " end."


def paragraph(label: str, sentences: int, length: int = 8) -> str:
    return " ".join(sentence(f"{label}s{n}", length) for n in range(sentences))


def shared_words(previous: str, following: str) -> int:
    """How many words at the end of `previous` start `following`."""
    first, second = previous.split(), following.split()
    for size in range(min(len(first), len(second)), 0, -1):
        if first[-size:] == second[:size]:
            return size
    return 0


def assert_lines_cover(chunks: list[Chunk], content: str) -> None:
    """Each paragraph of a chunk's text is found within its source lines start..end."""
    lines = content.split("\n")
    for chunk in chunks:
        assert chunk.start_line is not None and chunk.end_line is not None
        assert 1 <= chunk.start_line <= chunk.end_line <= len(lines)
        region = "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
        for piece in chunk.text.split("\n\n"):
            assert piece in region, (chunk.ordinal, piece[:60])
        assert chunk.text.split("\n")[0] in lines[chunk.start_line - 1]
        assert chunk.text.split("\n")[-1] in lines[chunk.end_line - 1]


def assert_basic_properties(chunks: list[Chunk], count: TokenCounter, limit: int) -> None:
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    counted = count([chunk.text for chunk in chunks])
    assert [chunk.token_count for chunk in chunks] == counted
    assert all(0 < tokens <= limit for tokens in counted)
    assert all(chunk.text == chunk.text.strip() for chunk in chunks)


# A document with sections of different shapes: short paragraphs, one long paragraph of short
# sentences, several mid-sized paragraphs, and a nested section.
SECTIONS = [
    ("# Guide", [paragraph("intro", 2), paragraph("more", 1)]),
    ("## Long", [paragraph("long", 20)]),
    ("## Paragraphs", [paragraph(f"p{n}", 4) for n in range(5)]),
    ("### Nested", [paragraph("nest", 3), paragraph("tail", 6)]),
    ("## Last", [sentence("only")]),
]
GUIDE = "\n\n".join(
    heading + "\n\n" + "\n\n".join(text.replace(" w", "\nw", 1) for text in paragraphs)
    for heading, paragraphs in SECTIONS
)
HEADING_LINES = {
    number for number, line in enumerate(GUIDE.split("\n"), start=1) if line.startswith("#")
}


@pytest.mark.parametrize(("target", "overlap", "limit"), [(40, 10, 48), (60, 12, 80), (25, 0, 25)])
def test_properties_on_a_structured_document(target: int, overlap: int, limit: int) -> None:
    document = read_one("guide.md", GUIDE)
    chunks = chunk_document(document, words, target=target, overlap=overlap, limit=limit)
    assert_basic_properties(chunks, words, limit)
    assert all(chunk.token_count <= target for chunk in chunks)
    assert_lines_cover(chunks, GUIDE)
    for chunk in chunks:
        assert chunk.start_line is not None and chunk.end_line is not None
        # never spans two headings: no heading line inside the chunk's range
        assert not HEADING_LINES & set(range(chunk.start_line, chunk.end_line + 1))
    # every word of the document is in some chunk
    assert set(document.text.split()) == {word for c in chunks for word in c.text.split()}
    # chunk headings are those of the blocks they hold
    block_headings = {word: b.headings for b in document.blocks for word in b.text.split()}
    for chunk in chunks:
        labels = {word for word in chunk.text.split() if word != "end."}  # others are unique
        assert {block_headings[word] for word in labels} == {chunk.headings}
    assert chunks[0].heading == "Guide"
    assert chunks[-1].heading == "Guide > Last"


def test_overlap_inside_sections_and_never_across() -> None:
    document = read_one("guide.md", GUIDE)
    chunks = chunk_document(document, words, target=40, overlap=10, limit=48)
    within = across = 0
    for previous, following in itertools.pairwise(chunks):
        shared = shared_words(previous.text, following.text)
        if previous.headings == following.headings:
            assert 0 < shared <= 10, (previous.ordinal, previous.text, following.text)
            within += 1
        else:
            assert shared == 0
            across += 1
    assert within >= 5 and across == len(SECTIONS) - 1


def test_no_overlap_when_asked_for_none() -> None:
    document = read_one("guide.md", GUIDE)
    chunks = chunk_document(document, words, target=40, overlap=0, limit=48)
    assert all(shared_words(a.text, b.text) == 0 for a, b in itertools.pairwise(chunks))
    assert sum(len(c.text.split()) for c in chunks) == len(document.text.split())


def test_chunks_are_near_the_target() -> None:
    # One paragraph of 8-word sentences: every chunk but the last is within a sentence of
    # the target, and the last holds what is left.
    content = "# Long\n\n" + paragraph("x", 30)
    chunks = chunk_document(read_one("long.md", content), words, target=50, overlap=8, limit=64)
    assert len(chunks) >= 5
    assert all(50 - 8 < chunk.token_count <= 50 for chunk in chunks[:-1])
    assert_lines_cover(chunks, content)


def test_whole_paragraphs_are_kept_together_when_they_fit() -> None:
    # Three 24-word paragraphs with a target of 40: two never fit together, so each chunk is
    # one paragraph (plus overlap from the previous one), never half of one.
    paragraphs = [paragraph(f"p{n}", 3) for n in range(3)]
    content = "\n\n".join(paragraphs)
    chunks = chunk_document(read_one("p.txt", content), words, target=40, overlap=10, limit=48)
    assert len(chunks) == 3
    for chunk, text in zip(chunks, paragraphs, strict=True):
        assert chunk.text.endswith(text)
    assert [shared_words(a.text, b.text) for a, b in itertools.pairwise(chunks)] == [
        8,
        8,
    ]  # the last sentence of the previous paragraph


def test_overlap_falls_back_to_words_when_sentences_are_long() -> None:
    content = paragraph("big", 6, length=20)  # 20-word sentences, overlap 8
    chunks = chunk_document(read_one("b.txt", content), words, target=45, overlap=8, limit=60)
    assert len(chunks) >= 3
    for previous, following in itertools.pairwise(chunks):
        assert 0 < shared_words(previous.text, following.text) <= 8
    assert_lines_cover(chunks, content)


def test_giant_paragraph_without_punctuation_is_word_windowed() -> None:
    text = " ".join(f"word{n}" for n in range(1000))
    chunks = chunk_document(read_one("giant.txt", text), words, target=50, overlap=5, limit=60)
    assert_basic_properties(chunks, words, 60)
    assert all(45 <= chunk.token_count <= 50 for chunk in chunks[:-1])
    covered = {word for chunk in chunks for word in chunk.text.split()}
    assert covered == set(text.split())
    assert all(chunk.start_line == chunk.end_line == 1 for chunk in chunks)


def test_long_lines_without_sentences_split_at_line_breaks() -> None:
    # six words a line, so word windows of 40 would end mid-line
    content = "\n".join(f"    value_{n} = compute({n}, other_{n}) + 1" for n in range(120))
    chunks = chunk_document(read_one("code.py", content), words, target=40, overlap=6, limit=48)
    lines = content.split("\n")
    assert len(chunks) >= 10
    assert_basic_properties(chunks, words, 48)
    for chunk in chunks:
        assert chunk.start_line is not None and chunk.end_line is not None
        # starts and ends on line boundaries (the first line may be indented in the source)
        assert lines[chunk.start_line - 1].strip() == chunk.text.split("\n")[0]
        assert lines[chunk.end_line - 1] == chunk.text.split("\n")[-1]
    assert all(shared_words(a.text, b.text) == 6 for a, b in itertools.pairwise(chunks))
    assert_lines_cover(chunks, content)


def test_a_single_enormous_word_is_cut_under_the_limit() -> None:
    def pieces_of_four(texts: Sequence[str]) -> list[int]:
        return [sum(math.ceil(len(word) / 4) for word in text.split()) for text in texts]

    text = "Start here. " + "x" * 2000 + " and the end."
    chunks = chunk_document(document_of(Block(text, 1, 1)), pieces_of_four, 50, 5, 60)
    assert_basic_properties(chunks, pieces_of_four, 60)
    assert "".join(chunk.text for chunk in chunks).count("x") >= 2000


def test_per_text_overhead_is_counted_once_per_chunk() -> None:
    # A counter that adds [CLS] and [SEP] to every text must not shrink chunks to a third.
    def with_specials(texts: Sequence[str]) -> list[int]:
        return [len(text.split()) + 2 for text in texts]

    text = " ".join(f"word{n}" for n in range(600))
    chunks = chunk_document(document_of(Block(text, 1, 1)), with_specials, 50, 0, 60)
    assert_basic_properties(chunks, with_specials, 60)
    assert all(chunk.token_count >= 45 for chunk in chunks[:-1])


def test_limit_holds_even_when_joined_text_counts_more() -> None:
    # A tokenizer may count a concatenation as more than the sum of its parts; the final text
    # is what must fit.
    def superadditive(texts: Sequence[str]) -> list[int]:
        return [len(text.split()) + 12 * text.count("\n\n") for text in texts]

    content = "\n\n".join(sentence(f"s{n}", 6) for n in range(20))
    chunks = chunk_document(read_one("s.txt", content), superadditive, 40, 6, 40)
    assert_basic_properties(chunks, superadditive, 40)
    assert set(content.split()) == {word for c in chunks for word in c.text.split()}
    assert_lines_cover(chunks, content)


def test_target_above_the_limit_is_capped() -> None:
    chunks = chunk_document(read_one("guide.md", GUIDE), words, target=500, overlap=10, limit=30)
    assert_basic_properties(chunks, words, 30)


def test_bad_sizes_are_refused() -> None:
    document = document_of(Block("Some text.", 1, 1))
    for sizes in ({"target": 0}, {"limit": 0}, {"overlap": -1}):
        with pytest.raises(ValueError, match="bad chunk sizes"):
            chunk_document(document, words, **sizes)


def test_empty_documents_have_no_chunks() -> None:
    assert chunk_document(document_of(), words) == []
    assert chunk_document(document_of(Block("  \n ", 1, 2)), words) == []


def test_empty_blocks_are_skipped() -> None:
    chunks = chunk_document(document_of(Block("", 1, 1), Block("Real text.", 3, 3)), words)
    assert [(c.ordinal, c.text, c.start_line) for c in chunks] == [(0, "Real text.", 3)]


def test_pdf_chunks_keep_their_page() -> None:
    path = SAMPLE / "quantization-for-serving.pdf"
    (document,) = list(read_documents(path, path.read_bytes(), "h"))
    chunks = chunk_document(document, words, target=40, overlap=8, limit=48)
    assert_basic_properties(chunks, words, 48)
    page_text = {
        page: "\n\n".join(b.text for b in document.blocks if b.page == page)
        for page in {b.page for b in document.blocks}
    }
    assert {chunk.page for chunk in chunks} == set(page_text) and len(page_text) >= 2
    for chunk in chunks:
        assert chunk.start_line is None and chunk.end_line is None
        assert chunk.page is not None
        for piece in chunk.text.split("\n\n"):
            assert piece in page_text[chunk.page]
    pages = [chunk.page or 0 for chunk in chunks]
    assert pages == sorted(pages)


def test_html_chunk_lines_cover_the_reflowed_block() -> None:
    content = "<h1>T</h1>\n<p>" + "\n".join(sentence(f"l{n}") for n in range(6)) + "\n</p>\n"
    document = read_one("page.html", content)
    assert [(b.start_line, b.end_line) for b in document.blocks] == [(2, 7)]
    (whole,) = chunk_document(document, words, target=100, overlap=0, limit=100)
    assert (whole.start_line, whole.end_line) == (2, 7)
    parts = chunk_document(document, words, target=20, overlap=0, limit=20)
    assert len(parts) == 3
    assert all((part.start_line, part.end_line) == (2, 7) for part in parts)


def test_jsonl_chunks_stay_on_their_row() -> None:
    row = '{"_id": "a", "title": "T", "text": "First line.\\nSecond line.\\nThird line."}'
    (document,) = list(read_documents(Path("c.jsonl"), f"\n{row}\n".encode(), "h"))
    chunks = chunk_document(document, words, target=2, overlap=0, limit=2)
    assert len(chunks) == 3
    assert all((c.start_line, c.end_line, c.headings) == (2, 2, ("T",)) for c in chunks)


# ------------------------------------------------------------------------------------------
# End to end: the bundled embedder's tokenizer on the sample corpus
# ------------------------------------------------------------------------------------------


def test_guide_sanity() -> None:
    # The shared fixture really has the shapes the tests above rely on.
    document = read_one("guide.md", GUIDE)
    assert len(document.blocks) == sum(len(paragraphs) for _, paragraphs in SECTIONS)
    assert any("\n" in block.text for block in document.blocks)
    assert re.search(r"^### Nested$", GUIDE, re.MULTILINE)
