"""PostgreSQL's particulars, in one place: full-text ranking, vectors as rows, locks and errors.

A team's store is one PostgreSQL database that several processes share (ingest workers, API
servers). What SQLite does with FTS5 and a local FAISS file, PostgreSQL does in the database:

- Lexical search is BM25 as FTS5's `bm25(chunks_fts, 1.0, 0.5)` computes it (k1 1.2, b 0.75),
  in one SQL statement (`LEXICAL_SEARCH`), because PostgreSQL's own `ts_rank_cd` keeps no document
  frequencies: with it a rare word weighed no more than a common one, and lexical search fell far
  behind FTS5's on SciFact (evals/README.md). Each query word is a term, stemmed by PostgreSQL.
  The GIN index over the generated `chunks.search` tsvector finds each term's chunks; their count
  is its document frequency. A term's frequency in a chunk is `ts_rank_cd` of that term alone,
  which without normalisation sums the weights of its positions: 1.0 in the text (A), 0.5 in the
  heading (B). A chunk's length is its `token_count` (the embedder's tokens, not FTS5's words:
  BM25 only uses it relative to the average), and the number and average length of all chunks
  come from an index-only scan of `chunks_token_count`. As in FTS5, these statistics are the whole
  store's, also when a scope limits the results.
- Each chunk's vector is written in the same transaction as its row (`chunks.vector`, pgvector),
  so every process sees the same index and a crash loses nothing that was committed.
- Two writers of the same file wait for each other on a transaction-level advisory lock keyed on
  the file's path (`lock`); writers of different files never wait. Migrations take one too.
- Connection failures become one `StoreError` written for the user (server unreachable, wrong
  credentials, no such database), and no message ever shows the password (`config.display_url`).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import Connection, text
from sqlalchemy.engine import ExceptionContext

from assistant.errors import StoreError
from assistant.index.scope import Scope

ENABLE_VECTOR = "CREATE EXTENSION vector;"
FILE_LOCKS = 256
# Text (A) weighs 1.0 and headings (B) 0.5, as in FTS5's bm25(chunks_fts, 1.0, 0.5); C and D unused.
TERM_WEIGHTS = "{0.0, 0.0, 0.5, 1.0}"
BM25_K1 = 1.2  # FTS5's: how fast repeating a term stops adding to the score
BM25_B = 0.75  # FTS5's: how much a long chunk's matches count less
# BM25 = sum over the terms a chunk holds of idf * (k1 + 1) / (1 + k1 * (1 - b + b * length /
# average) / frequency), which is idf * f * (k1 + 1) / (f + k1 * (...)) with f written once. idf is
# FTS5's: ln((N - n + 0.5) / (n + 0.5)) for n of N chunks holding the term, at least 1e-6.
# MATERIALIZED: each part is computed once, not again for every row that uses it.
LEXICAL_SEARCH = """
WITH terms AS MATERIALIZED (
    SELECT number, to_tsquery('english', word) AS query
    FROM unnest(CAST(:words AS text[])) WITH ORDINALITY AS given (word, number)
),
matches AS MATERIALIZED (
    SELECT terms.number, terms.query, chunks.id, chunks.search, chunks.token_count
    FROM terms JOIN chunks ON chunks.search @@ terms.query
),
corpus AS MATERIALIZED (
    SELECT count(*)::float8 AS size, greatest(avg(token_count), 1)::float8 AS average_length
    FROM chunks
),
rarity AS MATERIALIZED (
    SELECT number, greatest(ln((size - count(*) + 0.5) / (count(*) + 0.5)), 1e-6) AS idf
    FROM matches CROSS JOIN corpus GROUP BY number, size
)
SELECT id, sum(
    idf * (:k1 + 1) / (1 + :k1 * (1 - :b + :b * token_count / average_length)
        / nullif(ts_rank_cd(CAST(:weights AS real[]), search, query, 0), 0))
) AS score
FROM matches JOIN rarity USING (number) CROSS JOIN corpus
{scope}
GROUP BY id ORDER BY score DESC, id LIMIT :limit
"""


def is_postgresql(connection: Connection) -> bool:
    return connection.dialect.name == "postgresql"


def lock(connection: Connection, name: str) -> None:
    """Hold an advisory lock on `name` until this transaction ends (nothing on SQLite, whose
    writers already take turns on the whole file)."""
    if is_postgresql(connection):
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name}
        )


def lock_files(connection: Connection, paths: Sequence[str]) -> None:
    """Lock these files' rows for this transaction (see `lock`). Paths share `FILE_LOCKS` locks,
    taken in one order, so forgetting a whole folder holds a bounded number and two writers
    cannot deadlock; two files that share a lock only make their writers take turns."""
    if not is_postgresql(connection):
        return
    for bucket in sorted(
        {zlib.crc32(path.encode("utf-8", "surrogateescape")) % FILE_LOCKS for path in paths}
    ):
        lock(connection, f"file:{bucket}")


def lexical_search(
    connection: Connection, words: Sequence[str], limit: int, scope: Scope | None = None
) -> list[tuple[int, float]]:
    """Chunks matching any of `words` (stemmed by PostgreSQL), best BM25 first; with a `scope`,
    only the chunks in it."""
    within, scoped = scope.chunks_sql() if scope is not None else ("", {})
    statement = text(LEXICAL_SEARCH.format(scope=f"WHERE id IN ({within})" if within else ""))
    parameters = {
        "words": list(words),  # one to_tsquery each: letters and digits, no tsquery operators
        "weights": TERM_WEIGHTS,
        "k1": BM25_K1,
        "b": BM25_B,
        "limit": limit,
        **scoped,
    }
    rows = connection.execute(statement, parameters).all()
    return [(int(row[0]), float(row[1])) for row in rows]


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form; Python's repr of each float32 value reads back exactly."""
    return (
        "[" + ",".join(repr(value) for value in np.asarray(vector, dtype=np.float32).tolist()) + "]"
    )


def write_vectors(
    connection: Connection, ids: Sequence[int], vectors: Sequence[np.ndarray]
) -> None:
    """Set the pgvector column of these chunk rows."""
    if not len(ids):
        return
    connection.execute(
        text("UPDATE chunks SET vector = CAST(:vector AS vector) WHERE id = :id"),
        [
            {"id": int(chunk_id), "vector": vector_literal(vector)}
            for chunk_id, vector in zip(ids, vectors, strict=True)
        ],
    )


def translator(where: str) -> Any:
    """A `handle_error` hook: the failures a user can fix become one `StoreError` each."""

    def translate(context: ExceptionContext) -> None:
        error = context.original_exception
        message = (
            str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        )
        lowered = str(error).lower()
        state = getattr(getattr(error, "diag", None), "sqlstate", None) or getattr(
            error, "sqlstate", None
        )
        if "password authentication failed" in lowered or state == "28P01" or state == "28000":
            raise StoreError(
                f"the PostgreSQL server refused the credentials for {where} ({message}); check the "
                "user name and password in ASSISTANT_DATABASE_URL"
            ) from error
        if state == "3D000" or ("database" in lowered and "does not exist" in lowered):
            raise StoreError(
                f"the database of {where} does not exist on that server ({message}); create it "
                "(createdb) or fix ASSISTANT_DATABASE_URL"
            ) from error
        if (
            context.is_disconnect
            or "connection failed" in lowered
            or "connection refused" in lowered
        ):
            raise StoreError(
                f"cannot reach the PostgreSQL server of {where} ({message}); is it running, and "
                "are the host and port in ASSISTANT_DATABASE_URL right?"
            ) from error
        if (
            'extension "vector"' in lowered
            or "vector.control" in lowered
            or (state == "42501" and "extension" in lowered)
        ):
            raise StoreError(
                f"the database {where} lacks the pgvector extension ({message}); install pgvector "
                f"on the server and run, as a superuser, in that database: {ENABLE_VECTOR}"
            ) from error

    return translate
