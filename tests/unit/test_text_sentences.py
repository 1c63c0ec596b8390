"""Tests for assistant.text.sentences: the sentence splitter (its default and its plain rules),
content words, key terms and claims.

The two rule sets differ on purpose in what they keep (plain spans cover the text, which chunking
rebuilds from offsets) and by history in the rest; `test_the_two_rule_sets_side_by_side` pins
each difference, so that changing either is a visible decision (it moves chunk boundaries).
"""

from pathlib import Path

import pytest

from assistant.text.sentences import (
    CONTENT_STOPWORDS,
    content_words,
    is_claim,
    key_terms,
    sentence_spans,
    split_sentences,
)
from assistant.text.terms import STOPWORDS

SAMPLE = Path(__file__).resolve().parents[2] / "corpora" / "sample"


def texts_of(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[start:end] for start, end in spans]


# --------------------------------------------------------------------------------------------
# Sentences: the default rules
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("One fact. Another fact! A question?", ["One fact.", "Another fact!", "A question?"]),
        ("Use caches, e.g. Redis. Then stop.", ["Use caches, e.g. Redis.", "Then stop."]),
        ("It took 3.5 seconds. Done.", ["It took 3.5 seconds.", "Done."]),
        (
            "Dr. Smith met J. K. Rowling in the U.S. Army.",
            ["Dr. Smith met J. K. Rowling in the U.S. Army."],
        ),
        ("Keys are cached.[1] Values too [2].", ["Keys are cached.[1]", "Values too [2]."]),
        ("Keys are cached. [1][2] Values too.", ["Keys are cached. [1][2]", "Values too."]),
        ("First line\nsecond line.", ["First line", "second line."]),
        (
            "Steps:\n- Split text.\n- Embed it.\n2. Store it.",
            ["Steps:", "Split text.", "Embed it.", "Store it."],
        ),
        (
            "in the 19th century.First for Women is a magazine.",
            ["in the 19th century.", "First for Women is a magazine."],
        ),
        ("It is cheap. and fast.", ["It is cheap. and fast."]),
        ("Wait... What?", ["Wait...", "What?"]),
        ("", []),
        # Prose hard-wrapped at a fixed width (reST, Markdown, plain text): one paragraph.
        (
            "This is the origin of many Python features, including the\n"
            "   use of indentation for statement grouping. It came\n"
            "from ABC.",
            [
                "This is the origin of many Python features, including the\n"
                "   use of indentation for statement grouping.",
                "It came\nfrom ABC.",
            ],
        ),
        # A wrapped list item continues; a long line ending in a colon, a heading and a table
        # row do not run on into the next line.
        (
            "- Split the passages into sentences that are long enough to wrap\n"
            "  at the width of a terminal.\n"
            "- Embed them.\n"
            "The steps that the ingest command takes are these ones:\n"
            "read the files\n"
            "## A heading that is long enough to be taken for prose\n"
            "Text.\n"
            "| a column of a table that is wide enough to look wrapped |\n"
            "| b |",
            [
                "Split the passages into sentences that are long enough to wrap\n"
                "  at the width of a terminal.",
                "Embed them.",
                "The steps that the ingest command takes are these ones:",
                "read the files",
                "A heading that is long enough to be taken for prose",
                "Text.",
                "| a column of a table that is wide enough to look wrapped |",
                "| b |",
            ],
        ),
    ],
)
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


# --------------------------------------------------------------------------------------------
# Sentences: the plain rules (chunking, memory, context trimming)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
        ('He said "Stop." Then left.', ['He said "Stop."', "Then left."]),
        ("(A note.) (Another.)", ["(A note.)", "(Another.)"]),
        ("Use e.g. this one. Pi is 3.14 exactly.", ["Use e.g. this one.", "Pi is 3.14 exactly."]),
        ("Version 2. 3 apples.", ["Version 2.", "3 apples."]),
        ("First part\n\nsecond part", ["First part", "second part"]),
        ("  Padded.   Spaces.  ", ["Padded.", "Spaces."]),
        ("Ends with space. ", ["Ends with space."]),
        ("\u00c9t\u00e9. \u00c9cole.", ["\u00c9t\u00e9.", "\u00c9cole."]),
        ("", []),
        ("   ", []),
    ],
)
def test_plain_spans_cover_the_text(text: str, expected: list[str]) -> None:
    spans = sentence_spans(text, plain=True)
    assert texts_of(text, spans) == expected
    # nothing but whitespace is lost between the spans
    position = 0
    for start, end in spans:
        assert not text[position:start].strip()
        position = end
    assert not text[position:].strip()


# Every way the rule sets differ: (text, default sentences, plain sentences).
SIDE_BY_SIDE = [
    # The same where both apply.
    (
        'He said "Stop." Then left.',
        ['He said "Stop."', "Then left."],
        ['He said "Stop."', "Then left."],
    ),
    ("Wait... What? 3.5 is.", ["Wait...", "What?", "3.5 is."], ["Wait...", "What?", "3.5 is."]),
    (
        "Prose wrapped at a fixed width runs on past the\nline break. Then a new one.",
        ["Prose wrapped at a fixed width runs on past the\nline break.", "Then a new one."],
        ["Prose wrapped at a fixed width runs on past the\nline break.", "Then a new one."],
    ),
    # On purpose: plain spans keep bullets and headings and do not cut at line breaks.
    ("- First item\n- Second item", ["First item", "Second item"], ["- First item\n- Second item"]),
    ("## Setup\nRun it.", ["Setup", "Run it."], ["## Setup\nRun it."]),
    ("Short line\nnext line.", ["Short line", "next line."], ["Short line\nnext line."]),
    # History: abbreviations, citation markers, a missing space, what may start a sentence.
    ("Dr. Smith came. He sat.", ["Dr. Smith came.", "He sat."], ["Dr.", "Smith came.", "He sat."]),
    ("See Fig. 3 now.", ["See Fig. 3 now."], ["See Fig.", "3 now."]),
    (
        "Keys are cached. [1] Values too.",
        ["Keys are cached. [1]", "Values too."],
        ["Keys are cached.", "[1] Values too."],
    ),
    ("Cached.[1] Values too.", ["Cached.[1]", "Values too."], ["Cached.[1] Values too."]),
    (
        "The 19th century.First issue.",
        ["The 19th century.", "First issue."],
        ["The 19th century.First issue."],
    ),
    ("Caf\u00e9. \u00e9lan.", ["Caf\u00e9.", "\u00e9lan."], ["Caf\u00e9. \u00e9lan."]),
    ("Done. - next", ["Done.", "- next"], ["Done. - next"]),
    ("It ended.\n\nthen more.", ["It ended.", "then more."], ["It ended.\n\nthen more."]),
    ("End.\u00a0Next.", ["End.\u00a0Next."], ["End.", "Next."]),
]


@pytest.mark.parametrize(("text", "default", "plain"), SIDE_BY_SIDE)
def test_the_two_rule_sets_side_by_side(text: str, default: list[str], plain: list[str]) -> None:
    assert texts_of(text, sentence_spans(text)) == default
    assert texts_of(text, sentence_spans(text, plain=True)) == plain


@pytest.mark.parametrize(
    "path", sorted(p for p in SAMPLE.iterdir() if p.suffix != ".pdf"), ids=lambda p: p.name
)
def test_spans_are_ordered_and_trimmed_on_the_sample_corpus(path: Path) -> None:
    text = path.read_text()
    for plain in (False, True):
        spans = sentence_spans(text, plain=plain)
        assert spans
        position = 0
        for start, end in spans:
            assert position <= start < end
            assert text[start:end] == text[start:end].strip()
            if plain:
                assert not text[position:start].strip()
            position = end


# --------------------------------------------------------------------------------------------
# Content words
# --------------------------------------------------------------------------------------------


def test_content_words_normalise() -> None:
    assert content_words("The caches cached it while caching.") == ["cach", "cach", "cach"]
    assert content_words("It took 3.5 s for 1,000 tokens in 1973.") == [
        "took",
        "3.5",
        "1000",
        "token",
        "1973",
    ]
    assert "not" in content_words("The cache isn't shared.")
    assert content_words("the of and to is") == []


def test_key_terms_are_names_and_numbers() -> None:
    assert key_terms("Mary Shelley wrote it in 1818 [2].") == {"mary", "shelley", "1818"}
    assert key_terms("However, the KV cache grows.") == {"kv"}
    assert key_terms("it was written in a book.") == frozenset()


@pytest.mark.parametrize(
    ("text", "claim"),
    [
        ("Sure.", False),
        ("Yes!", False),
        ("Here is what I found based on the provided passages:", False),
        ("I could not find this in your documents.", False),
        ("[1]", False),
        ("Paris is the capital.", True),
        ("Delhi", True),
    ],
)
def test_is_claim(text: str, claim: bool) -> None:
    assert is_claim(text) is claim


def test_content_words_keep_the_negations_the_base_stop_words_drop() -> None:
    assert {"no", "nor", "not"} <= STOPWORDS
    assert not {"no", "nor", "not"} & CONTENT_STOPWORDS
    assert {"also", "may", "must"} <= CONTENT_STOPWORDS - STOPWORDS
    assert content_words("No cache, nor keys. It may grow.") == ["no", "cach", "nor", "key", "grow"]
