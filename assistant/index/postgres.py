"""PostgreSQL's particulars, in one place: full-text ranking, vectors as rows, locks and errors.

A team's store is one PostgreSQL database that several processes share (ingest workers, API
servers). What SQLite does with FTS5 and a local FAISS file, PostgreSQL does in the database:

- Lexical search ranks the generated `chunks.search` tsvector (English stemming, the text
  weighted 1.0 and the heading 0.5, as FTS5's bm25 weights them) with `ts_rank_cd`, cover density,
  normalised by the log of the chunk's length. It is not BM25: PostgreSQL keeps no document
  frequencies, so a rare word weighs no more than a common one. The GIN index finds the matches.
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
RANK_WEIGHTS = "{0.0, 0.0, 0.5, 1.0}"
RANK_NORMALIZATION = 1  # divide by 1 + log(length): long chunks do not win by length alone


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
    """Chunks matching any of `words` (stemmed by PostgreSQL), best `ts_rank_cd` first; with a
    `scope`, only the chunks in it."""
    within, scoped = scope.chunks_sql() if scope is not None else ("", {})
    statement = text(
        "SELECT id, ts_rank_cd(CAST(:weights AS real[]), search, query, :normalization) AS rank "
        "FROM chunks, to_tsquery('english', :query) AS query "
        "WHERE search @@ query "
        + (f"AND id IN ({within}) " if within else "")
        + "ORDER BY rank DESC, id LIMIT :limit"
    )
    parameters = {
        "weights": RANK_WEIGHTS,
        "normalization": RANK_NORMALIZATION,
        "query": " | ".join(words),  # words are letters and digits only: no tsquery operators
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
