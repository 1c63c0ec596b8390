"""Stores for the retrieval benchmark: a PostgreSQL server, fresh databases, copies and fillers.

`evals/bench/retrieval.py` compares SQLite + FAISS with PostgreSQL through the same `Retriever`.
Embedding is the slow part, so a corpus is embedded once, into SQLite, and `copy_store` copies its
rows and vectors into PostgreSQL; `filled_store` makes a store of any size from those chunks. The
server is the one the tests start (tests/postgres.py: pgserver's binaries, a Unix socket in /tmp).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import common
import numpy as np
import sqlalchemy

from assistant.index.home import EMBEDDING_DIMENSION_KEY, EMBEDDING_MODEL_KEY
from assistant.index.pgvectors import PgVectorIndex
from assistant.index.store import ChunkRow, NewChunk, NewDocument, Store
from assistant.index.vectors import VectorIndex, Vectors

sys.path.insert(0, str(common.ROOT))
from tests.postgres import running_server  # the server the tests start

# An HNSW graph built in less memory than it needs is built on disk, many times slower.
HNSW_BUILD_MEMORY = "1GB"
CHUNKS_PER_DOCUMENT = 100  # the filled stores' documents


@contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """The URL of a PostgreSQL server's database to create the benchmark's databases from: the
    one given, or that of a server started for this run and stopped afterwards."""
    if url:
        yield url
        return
    with running_server() as server:
        yield server.url()


def administer(server_url: str, *statements: str) -> None:
    """Run statements that may not run in a transaction (CREATE DATABASE) on the server."""
    engine = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(sqlalchemy.text(statement))
    finally:
        engine.dispose()


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database `name` on the server of `server_url` (an old one is dropped first);
    returns its URL. Index builds in it get the memory an in-memory HNSW build of 100k needs."""
    administer(
        server_url,
        f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
        f'CREATE DATABASE "{name}"',
        f"ALTER DATABASE \"{name}\" SET maintenance_work_mem = '{HNSW_BUILD_MEMORY}'",
    )
    return sqlalchemy.make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    administer(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def stored_chunks(store: Store) -> tuple[list[ChunkRow], np.ndarray]:
    """Every chunk of `store` in id order, with its embedding (row i of the matrix)."""
    ids = store.chunk_ids().tolist()
    rows = store.chunks_by_id(ids)
    found, matrix = store.embeddings(ids)
    position = {int(chunk_id): i for i, chunk_id in enumerate(found)}
    order = [position[chunk_id] for chunk_id in ids]
    return [rows[chunk_id] for chunk_id in ids], matrix[order]


def new_chunk(row: ChunkRow, ordinal: int, vector: np.ndarray) -> NewChunk:
    return NewChunk(
        ordinal=ordinal,
        text=row.text,
        start_line=row.start_line,
        end_line=row.end_line,
        page=row.page,
        heading=row.heading,
        token_count=row.token_count,
        embedding=vector,
    )


def copy_store(source: Store, target: Store) -> int:
    """Copy every document, chunk and embedding of `source` into the empty `target`, in the same
    order (ties between equal scores break on chunk ids), with the same file size, mtime and hash,
    so ingesting the same files into `target` finds them unchanged. Returns the chunks copied."""
    rows, matrix = stored_chunks(source)
    chunks_of: dict[int, list[NewChunk]] = {}
    for row, vector in zip(rows, matrix, strict=True):
        chunks_of.setdefault(row.document_id, []).append(new_chunk(row, row.ordinal, vector))
    files: dict[str, list[NewDocument]] = {}
    for document in sorted(source.documents(), key=lambda document: document.id):
        files.setdefault(document.path, []).append(
            NewDocument(
                key=document.key,
                path=document.path,
                format=document.format,
                title=document.title,
                content_hash=document.content_hash,
                file_hash=document.file_hash,
                size=document.size,
                mtime=document.mtime,
                chunks=chunks_of.get(document.id, []),
            )
        )
    for path, documents in files.items():
        target.replace_file(path, documents)
    for key in (EMBEDDING_MODEL_KEY, EMBEDDING_DIMENSION_KEY):
        value = source.get_setting(key)
        if value is not None:
            target.set_setting(key, value)
    return len(rows)


def filled_store(
    url: str, size: int, rows: Sequence[ChunkRow], matrix: np.ndarray, seed: int
) -> Store:
    """A store of `size` chunks: the real ones first, then their texts again (so lexical search
    meets as many matches per chunk) with synthetic unit vectors."""
    store = Store(url)
    rng = np.random.default_rng(seed)
    for start in range(0, size, CHUNKS_PER_DOCUMENT):
        count = min(CHUNKS_PER_DOCUMENT, size - start)
        positions = [(start + i) % len(rows) for i in range(count)]
        if start + count <= len(rows):
            vectors = matrix[positions]
        else:
            vectors = rng.standard_normal((count, matrix.shape[1])).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            real = [i for i in range(count) if start + i < len(rows)]
            vectors[real] = matrix[[positions[i] for i in real]]
        chunks = [
            new_chunk(rows[p], i, v)
            for i, (p, v) in enumerate(zip(positions, vectors, strict=True))
        ]
        path = f"/bench/{start // CHUNKS_PER_DOCUMENT}.txt"
        document = NewDocument(
            key=path,
            path=path,
            format="text",
            title=None,
            content_hash=str(start),
            file_hash=str(start),
            size=0,
            mtime=0.0,
            chunks=chunks,
        )
        store.replace_file(path, [document])
    return store


def open_vectors(backend: str, store: Store, folder: Path, dimension: int) -> Vectors:
    if backend == "postgres":
        return PgVectorIndex.open(store, dimension)  # builds the HNSW index over the rows
    return VectorIndex.open(folder / "index.faiss", dimension, store)
