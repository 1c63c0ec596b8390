"""The SQLAlchemy store: documents, their chunks (with embeddings), and a lexical index.

The database is the source of truth. Each chunk row keeps its embedding as float32 bytes, so the
FAISS index is a cache that can always be rebuilt from here (see `index.py`). Chunk ids come from
an AUTOINCREMENT column and are never reused, which keeps FAISS ids and row ids in step even after
deletions. Schema changes are named, ordered migrations recorded in `schema_migrations`.

On SQLite the store also keeps an FTS5 table over chunk text (kept in step by triggers) for BM25
ranking; on PostgreSQL a generated tsvector column ranked by the same BM25 in SQL, and each chunk's
vector in a pgvector column written in the chunk's own transaction (see `postgres.py`); other
databases work without the lexical ranker. A store opened read-only (a home we
may not write) applies no migration and refuses to open if one is waiting; how SQLite is opened,
and how a damaged file is reported, is in `database.py`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import (
    Connection,
    Engine,
    delete,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import SQLAlchemyError

from assistant.config import display_url
from assistant.errors import StoreError
from assistant.index import postgres
from assistant.index.database import open_engine, quick_check, sqlite_file
from assistant.index.schema import (
    chunks,
    documents,
    migrate,
    pending_migrations,
    schema_migrations,
    settings,
)
from assistant.index.scope import Scope
from assistant.text.terms import STOPWORDS


@dataclass(frozen=True)
class DocumentRow:
    id: int
    key: str
    path: str
    format: str
    title: str | None
    content_hash: str
    file_hash: str
    size: int
    mtime: float
    chunk_count: int
    ingested_at: float


@dataclass(frozen=True)
class ChunkRow:
    id: int
    document_id: int
    ordinal: int
    text: str
    start_line: int | None
    end_line: int | None
    page: int | None
    heading: str
    token_count: int
    source: str  # the document key


@dataclass(frozen=True)
class NewChunk:
    """A chunk ready to be stored: its place in the document and its embedding."""

    ordinal: int
    text: str
    start_line: int | None
    end_line: int | None
    page: int | None
    heading: str
    token_count: int
    embedding: np.ndarray


@dataclass(frozen=True)
class NewDocument:
    key: str
    path: str
    format: str
    title: str | None
    content_hash: str
    file_hash: str
    size: int
    mtime: float
    chunks: Sequence[NewChunk]


# ---------------------------------------------------------------------------------------------

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class Store:
    """Documents and chunks in a SQLAlchemy database."""

    def __init__(self, url: str, read_only: bool = False) -> None:
        self.url = url
        self.read_only = read_only
        path = sqlite_file(url)
        if path is not None and not read_only:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"cannot create the folder of {path}: {error}") from None
        self.engine: Engine = open_engine(url, read_only)
        if read_only:
            self._refuse_pending_migrations()
        else:
            self.migrate()

    @property
    def has_lexical(self) -> bool:
        return self.engine.dialect.name in ("sqlite", "postgresql")

    def close(self) -> None:
        self.engine.dispose()

    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded; returns their names."""
        try:
            return migrate(self.engine)
        except SQLAlchemyError as error:
            raise StoreError(
                f"cannot prepare the database {display_url(self.url)}: {error}"
            ) from error

    def _refuse_pending_migrations(self) -> None:
        try:
            waiting = pending_migrations(self.engine)
        except SQLAlchemyError as error:
            raise StoreError(
                f"cannot read the database {display_url(self.url)}: {error}"
            ) from error
        if waiting:
            raise StoreError(
                f"the database {display_url(self.url)} needs upgrading ({', '.join(waiting)}) but "
                "is read-only here; run any command (`assistant docs`) once with write access to "
                "upgrade it"
            )

    def check(self) -> list[str]:
        """What the database's own consistency check finds wrong; empty when healthy."""
        return quick_check(self.engine)

    def applied_migrations(self) -> list[str]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(schema_migrations.c.name).order_by(schema_migrations.c.name)
            )
            return list(rows.scalars())

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as connection:
                yield connection
        except SQLAlchemyError as error:
            raise StoreError(f"database error: {error}") from error

    # --- settings ---------------------------------------------------------------------------

    def get_setting(self, key: str) -> str | None:
        with self.engine.connect() as connection:
            value = connection.execute(
                select(settings.c.value).where(settings.c.key == key)
            ).scalar_one_or_none()
            return None if value is None else str(value)

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as connection:
            postgres.lock(connection, f"setting:{key}")  # two processes recording it at once
            connection.execute(delete(settings).where(settings.c.key == key))
            connection.execute(insert(settings).values(key=key, value=value))

    # --- documents --------------------------------------------------------------------------

    def documents(self, path_prefix: str | None = None) -> list[DocumentRow]:
        """Every document, or those of the file `path_prefix` or under it as a folder (matched
        case-sensitively, as a scope matches: `Scope.sql`)."""
        query = select(documents).order_by(documents.c.key)
        if path_prefix is not None:
            query = query.where(Scope((path_prefix,)).clause())
        with self.engine.connect() as connection:
            return [DocumentRow(**row._mapping) for row in connection.execute(query)]

    def replace_file(
        self, path: str, new_documents: Sequence[NewDocument], keep_keys: Iterable[str] = ()
    ) -> tuple[list[int], list[int]]:
        """Atomically make `new_documents` (plus the kept keys) the content of file `path`.

        Documents of `path` whose key is neither new nor kept are deleted. Returns the ids of the
        chunks removed and of the chunks added, so the caller can update the vector index.
        """
        keep = set(keep_keys) - {document.key for document in new_documents}
        now = time.time()
        added: list[int] = []
        vectors: list[np.ndarray] = []
        with self.transaction() as connection:
            postgres.lock_files(connection, [path])  # another process replacing the same file
            old = connection.execute(
                select(documents.c.id, documents.c.key).where(documents.c.path == path)
            ).all()
            stale_ids = [row.id for row in old if row.key not in keep]
            removed = self._delete_documents(connection, stale_ids)
            for document in new_documents:
                result = connection.execute(
                    insert(documents).values(
                        key=document.key,
                        path=document.path,
                        format=document.format,
                        title=document.title,
                        content_hash=document.content_hash,
                        file_hash=document.file_hash,
                        size=document.size,
                        mtime=document.mtime,
                        chunk_count=len(document.chunks),
                        ingested_at=now,
                    )
                )
                document_id = _new_id(result)
                for chunk in document.chunks:
                    chunk_result = connection.execute(
                        insert(chunks).values(
                            document_id=document_id,
                            ordinal=chunk.ordinal,
                            text=chunk.text,
                            start_line=chunk.start_line,
                            end_line=chunk.end_line,
                            page=chunk.page,
                            heading=chunk.heading,
                            token_count=chunk.token_count,
                            embedding=np.asarray(chunk.embedding, dtype=np.float32).tobytes(),
                        )
                    )
                    added.append(_new_id(chunk_result))
                    vectors.append(chunk.embedding)
            if postgres.is_postgresql(connection):
                postgres.write_vectors(connection, added, vectors)
            if keep:
                # Kept documents of a changed file take the file's new hash and stat.
                first = new_documents[0] if new_documents else None
                if first is not None:
                    connection.execute(
                        documents.update()
                        .where(documents.c.path == path, documents.c.key.in_(keep))
                        .values(file_hash=first.file_hash, size=first.size, mtime=first.mtime)
                    )
        return removed, added

    def touch_file(self, path: str, size: int, mtime: float, file_hash: str | None = None) -> None:
        """Record a new size/mtime (and hash) for a file whose documents did not change."""
        values: dict[str, Any] = {"size": size, "mtime": mtime}
        if file_hash is not None:
            values["file_hash"] = file_hash
        with self.transaction() as connection:
            connection.execute(documents.update().where(documents.c.path == path).values(**values))

    def forget_paths(self, paths: Iterable[str]) -> list[int]:
        """Delete every document of these files; returns the removed chunk ids."""
        wanted = list(paths)
        if not wanted:
            return []
        with self.transaction() as connection:
            postgres.lock_files(connection, wanted)
            ids = list(
                connection.execute(
                    select(documents.c.id).where(documents.c.path.in_(wanted))
                ).scalars()
            )
            return self._delete_documents(connection, ids)

    @staticmethod
    def _delete_documents(connection: Connection, document_ids: Sequence[int]) -> list[int]:
        if not document_ids:
            return []
        removed: list[int] = []
        for start in range(0, len(document_ids), 500):
            batch = list(document_ids[start : start + 500])
            removed.extend(
                connection.execute(
                    select(chunks.c.id).where(chunks.c.document_id.in_(batch))
                ).scalars()
            )
            connection.execute(delete(chunks).where(chunks.c.document_id.in_(batch)))
            connection.execute(delete(documents).where(documents.c.id.in_(batch)))
        return removed

    # --- chunks -----------------------------------------------------------------------------

    def chunk_ids(self, scope: Scope | None = None) -> np.ndarray:
        """The ids of every chunk, or of the chunks in `scope`, in order."""
        query = select(chunks.c.id).order_by(chunks.c.id)
        if scope is not None:
            query = query.join(documents, documents.c.id == chunks.c.document_id).where(
                scope.clause()
            )
        with self.engine.connect() as connection:
            ids = connection.execute(query).scalars().all()
        return np.asarray(ids, dtype=np.int64)

    def embeddings(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Stored embeddings of these chunk ids, as (ids, matrix); unknown ids are left out."""
        found_ids: list[int] = []
        vectors: list[np.ndarray] = []
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                batch = [int(i) for i in ids[start : start + 500]]
                rows = connection.execute(
                    select(chunks.c.id, chunks.c.embedding).where(chunks.c.id.in_(batch))
                )
                for row in rows:
                    found_ids.append(int(row.id))
                    vectors.append(np.frombuffer(row.embedding, dtype=np.float32))
        if not vectors:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return np.asarray(found_ids, dtype=np.int64), np.vstack(vectors)

    def chunks_by_id(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        found: dict[int, ChunkRow] = {}
        columns = [c for c in chunks.c if c.name != "embedding"]
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):
                batch = [int(i) for i in ids[start : start + 500]]
                rows = connection.execute(
                    select(*columns, documents.c.key.label("source"))
                    .join(documents, documents.c.id == chunks.c.document_id)
                    .where(chunks.c.id.in_(batch))
                )
                for row in rows:
                    found[int(row.id)] = ChunkRow(**row._mapping)
        return found

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            document_count = connection.execute(select(func.count()).select_from(documents))
            chunk_count = connection.execute(select(func.count()).select_from(chunks))
            file_count = connection.execute(select(func.count(func.distinct(documents.c.path))))
            return {
                "files": int(file_count.scalar_one()),
                "documents": int(document_count.scalar_one()),
                "chunks": int(chunk_count.scalar_one()),
            }

    def lexical_search(
        self, query: str, limit: int, scope: Scope | None = None
    ) -> list[tuple[int, float]]:
        """BM25 over chunk text and headings: (chunk id, score), best first (higher is better);
        with a `scope`, over the chunks in it only, inside the query."""
        if not self.has_lexical:
            return []
        match = fts_query(query)
        if not match:
            return []
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as connection:
                try:
                    return postgres.lexical_search(connection, query_words(query), limit, scope)
                except SQLAlchemyError as error:
                    raise StoreError(f"lexical search failed: {error}") from error
        within, parameters = scope.chunks_sql() if scope is not None else ("", {})
        statement = text(
            "SELECT rowid, bm25(chunks_fts, 1.0, 0.5) AS rank FROM chunks_fts "
            "WHERE chunks_fts MATCH :match "
            + (f"AND rowid IN ({within}) " if within else "")
            + "ORDER BY rank LIMIT :limit"
        )
        with self.engine.connect() as connection:
            try:
                rows = connection.execute(
                    statement, {"match": match, "limit": limit, **parameters}
                ).all()
            except SQLAlchemyError as error:
                raise StoreError(f"lexical search failed: {error}") from error
        return [(int(row[0]), -float(row[1])) for row in rows]


def fts_query(query: str) -> str:
    """An FTS5 MATCH expression: the query's content words, each quoted, joined by OR.

    The stop words (`text.terms.STOPWORDS`, too common to help BM25) are dropped; FTS5 stems
    the rest itself (see `text.terms.stem`).
    """
    return " OR ".join(f'"{word}"' for word in query_words(query))


def query_words(query: str) -> list[str]:
    """The query's content words, lower-cased, each once: stop words and single letters go."""
    words: list[str] = []
    for word in _WORD.findall(query.lower()):
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()) or word in words:
            continue
        words.append(word)
    return words


def _new_id(result: Any) -> int:
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every table here has an integer primary key
        raise StoreError("the database did not return the new row's id")
    return int(key[0])
