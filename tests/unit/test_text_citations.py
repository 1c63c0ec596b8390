"""Tests for assistant.text.citations: finding, filtering, stripping and writing citation
markers."""

import pytest

from assistant.text.citations import (
    CitationMarker,
    cited_numbers,
    find_markers,
    format_markers,
    remove_markers,
    render_sentence,
    strip_markers,
)


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("Caches store keys [2].", [(2,)]),
        ("Both [1, 3].", [(1, 3)]),
        ("Both [1,3] and [ 4 ].", [(1, 3), (4,)]),
        ("Adjacent [1][3].", [(1,), (3,)]),
        ("A range [2-4].", [(2, 3, 4)]),
        ("An en-dash range [2–4].", [(2, 3, 4)]),
        ("A reversed range [4-2].", [(2, 3, 4)]),
        ("Mixed [1, 3-4; 6].", [(1, 3, 4, 6)]),
        ("Repeated [2, 2].", [(2,)]),
        ("No marker [a] or [] or [1a].", []),
        ("Indexing in code `values[0]` is not a citation [1].", [(1,)]),
    ],
)
def test_find_markers_numbers(text: str, numbers: list[tuple[int, ...]]) -> None:
    assert [marker.numbers for marker in find_markers(text)] == numbers


def test_find_markers_positions() -> None:
    text = "Keys [1] and values [2]."
    assert find_markers(text) == [CitationMarker(5, 8, (1,)), CitationMarker(20, 23, (2,))]


def test_huge_range_is_capped() -> None:
    (marker,) = find_markers("Everything [1-100000].")
    assert marker.numbers[0] == 1
    assert len(marker.numbers) <= 101


def test_valid_numbers_and_cited_numbers() -> None:
    (marker,) = find_markers("x [0, 2, 7]")
    assert marker.valid_numbers(5) == (2,)
    assert cited_numbers("A [3][1]. B [1, 9]. C [2-3].", passage_count=3) == (3, 1, 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Caches store keys [1], values [2][3].", "Caches store keys, values."),
        ("Caches store keys [1] .", "Caches store keys."),
        ("Caches store keys.[1]", "Caches store keys."),
        ("Caches store keys. [1].", "Caches store keys."),
        ("Caches ([2]) store keys.", "Caches store keys."),
        ("Caches (see [2]) store keys.", "Caches (see) store keys."),
        ("Wait... really [1]?", "Wait... really?"),
        ("Line one [1].\nLine two [2].", "Line one.\nLine two."),
        ("No markers here.", "No markers here."),
    ],
)
def test_strip_markers_tidies(text: str, expected: str) -> None:
    assert strip_markers(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Caches store keys [1], values [2][3].", "Caches store keys, values."),
        ("Keys [1; 2] and [ 3 ].", "Keys and."),
        ("Fact\n[1] next", "Fact next"),
        ("Code:\n    x  =  pop()  [2]\n", "Code:\n    x  =  pop()\n"),
        ("Index `values[0]` [1].", "Index `values[0]`."),
    ],
)
def test_remove_markers_keeps_the_layout(text: str, expected: str) -> None:
    assert remove_markers(text) == expected


def test_format_markers() -> None:
    assert format_markers((1, 3)) == "[1][3]"
    assert format_markers(()) == ""


@pytest.mark.parametrize(
    ("sentence", "citations", "expected"),
    [
        ("KV caches store keys.", (2,), "KV caches store keys [2]."),
        ("KV caches store keys [5].", (2, 1), "KV caches store keys [1][2]."),
        ("Is it cached?", (1, 1), "Is it cached [1]?"),
        ("No final punctuation", (3,), "No final punctuation [3]"),
        ('He said "cache it."', (1,), 'He said "cache it." [1]'),
        ("Unsupported claim [4].", (), "Unsupported claim."),
    ],
)
def test_render_sentence(sentence: str, citations: tuple[int, ...], expected: str) -> None:
    assert render_sentence(sentence, citations) == expected


def test_render_then_find_round_trips() -> None:
    rendered = render_sentence("Values are cached.", (3, 1))
    assert cited_numbers(rendered, passage_count=3) == (1, 3)
    assert strip_markers(rendered) == "Values are cached."
