from __future__ import annotations

import numpy as np

from assistant.index.schema import MIGRATIONS
from assistant.index.store import NewChunk, NewDocument, Store, fts_query


def _document(
    key: str, texts: list[str], path: str | None = None, digest: str = "h"
) -> NewDocument:
    chunks = [
        NewChunk(
            i,
            text,
            i + 1,
            i + 1,
            None,
            "Title > Part",
            len(text.split()),
            np.full(4, i + 1, dtype=np.float32),
        )
        for i, text in enumerate(texts)
    ]
    return NewDocument(key, path or key, "markdown", "Title", digest, digest, 10, 1.0, chunks)


def test_migrations_are_recorded_and_run_once(store_url: str) -> None:
    store = Store(store_url)
    assert store.applied_migrations() == sorted(name for name, _ in MIGRATIONS)
    store.close()
    again = Store(store_url)
    assert again.migrate() == []


def test_replace_file_never_reuses_chunk_ids(store_url: str) -> None:
    store = Store(store_url)
    removed, first = store.replace_file("/d/a.md", [_document("/d/a.md", ["one", "two"])])
    assert removed == [] and len(first) == 2
    removed, second = store.replace_file("/d/a.md", [_document("/d/a.md", ["three"], digest="x")])
    assert sorted(removed) == sorted(first)
    assert min(second) > max(first)
    assert store.counts() == {"files": 1, "documents": 1, "chunks": 1}
    ids, vectors = store.embeddings(second)
    assert ids.tolist() == second and vectors.shape == (1, 4)


def test_replace_file_keeps_unchanged_rows_of_a_corpus(store_url: str) -> None:
    store = Store(store_url)
    rows = [
        _document("/c.jsonl#1", ["alpha"], "/c.jsonl"),
        _document("/c.jsonl#2", ["beta"], "/c.jsonl"),
    ]
    _, added = store.replace_file("/c.jsonl", rows)
    changed = _document("/c.jsonl#2", ["gamma"], "/c.jsonl", digest="new")
    removed, new = store.replace_file("/c.jsonl", [changed], keep_keys=["/c.jsonl#1"])
    assert removed == [added[1]] and len(new) == 1
    assert sorted(row.key for row in store.documents()) == ["/c.jsonl#1", "/c.jsonl#2"]


def test_forget_and_prefix_listing(store_url: str) -> None:
    store = Store(store_url)
    store.replace_file("/d/a.md", [_document("/d/a.md", ["x"])])
    store.replace_file("/d2/b.md", [_document("/d2/b.md", ["y"])])
    assert [row.key for row in store.documents("/d")] == ["/d/a.md"]
    assert len(store.forget_paths(["/d/a.md"])) == 1
    assert [row.key for row in store.documents()] == ["/d2/b.md"]
    assert store.lexical_search("x", 5) == []


def test_a_folder_prefix_is_case_sensitive(store_url: str) -> None:
    # SQLite's LIKE ignores ASCII case: ingesting or forgetting /x/Docs must not take /x/docs.
    store = Store(store_url)
    store.replace_file("/x/docs/a.md", [_document("/x/docs/a.md", ["x"])])
    store.replace_file("/x/Docs/b.md", [_document("/x/Docs/b.md", ["y"])])
    assert [row.key for row in store.documents("/x/Docs")] == ["/x/Docs/b.md"]
    assert [row.key for row in store.documents("/x/docs/")] == ["/x/docs/a.md"]
    assert [row.key for row in store.documents("/x/DOCS")] == []


def test_lexical_search_ranks_matching_chunks(store_url: str) -> None:
    store = Store(store_url)
    _, ids = store.replace_file(
        "/d/a.md",
        [_document("/d/a.md", ["the cache stores keys and values", "tokenizers split words"])],
    )
    hits = store.lexical_search("What does the cache store?", 5)
    assert hits[0][0] == ids[0] and hits[0][1] > 0
    assert store.lexical_search("the of and", 5) == []  # only stopwords: no query at all


def test_fts_query_drops_stopwords_and_quotes_words() -> None:
    assert fts_query('What is "KV" cache-size?') == '"kv" OR "cache" OR "size"'
    assert fts_query("the and of") == ""
