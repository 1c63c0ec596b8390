"""Tests for assistant.text.terms: the base stop words and the stemmer (both its rule sets), and
how the stemmer differs from the Porter stemmer SQLite's FTS5 ranks BM25 with."""

import sqlite3

import pytest

from assistant.text.terms import STOPWORDS, stem


def test_stop_words_are_lower_case_function_words() -> None:
    assert {"the", "of", "and", "is", "not", "yourselves"} <= STOPWORDS
    assert all(word == word.lower() for word in STOPWORDS)
    assert not {"cache", "may", "one", "paris"} & STOPWORDS


@pytest.mark.parametrize(
    ("word", "default", "plain"),
    [
        ("caches", "cach", "cach"),
        ("cached", "cach", "cach"),
        ("caching", "cach", "cach"),
        ("studies", "study", "study"),
        ("classes", "class", "class"),
        ("glass", "glass", "glass"),
        ("status", "status", "status"),
        ("analysis", "analysis", "analysis"),
        ("towers", "tower", "tower"),
        ("introduced", "introduc", "introduc"),
        # The plain rules (answer memory): numbers are words, short -ed words and doubled
        # consonants stay.
        ("1,000", "1000", "1,000"),
        ("1520s", "1520s", "1520"),
        ("aimed", "aim", "aimed"),
        ("stopped", "stop", "stopp"),
    ],
)
def test_stem(word: str, default: str, plain: str) -> None:
    assert stem(word) == default
    assert stem(word, plain=True) == plain


def test_stem_merges_inflections_only_unlike_fts5_porter() -> None:
    """The docstring's claim: FTS5's Porter stemmer merges words a claim must keep apart."""
    words = ["general", "generous", "generalization", "universe", "university"]
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE VIRTUAL TABLE t USING fts5(x, tokenize='porter unicode61')")
    connection.executemany("INSERT INTO t(x) VALUES (?)", [(word,) for word in words])
    connection.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, 'row')")
    porter = {row[0] for row in connection.execute("SELECT term FROM v")}
    assert porter == {"gener", "univers"}
    assert len({stem(word) for word in words}) == len(words)
