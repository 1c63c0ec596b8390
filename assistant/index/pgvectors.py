"""The vector index of a PostgreSQL store: pgvector's column on the chunk rows, HNSW for cosine.

The vectors are written with their chunks, in one transaction (`Store.replace_file`), and leave
with them, so there is no file to save, nothing to reconcile after a crash, and every process that
opens the database searches the same index. The column has no dimension of its own (that belongs
to the home's embedding model), so the HNSW index is over `vector::vector(dimension)`, made the
first time a home of that dimension opens it, and every query casts the same way to use it.

`ef_search` (HNSW's candidate list) is raised to several times `k`: pgvector's default (40) would
return at most 40 rows, fewer than hybrid search asks for, and a wider list keeps the approximate
search close to FAISS's exact one.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import Connection, text

from assistant.errors import IndexStateError
from assistant.index import postgres
from assistant.index.store import Store

EF_SEARCH_FACTOR = 4
EF_SEARCH_LIMIT = 1000  # pgvector's maximum
# A scope of up to this many chunks is searched exactly (`search`): comparing them all is cheap.
EXACT_SCOPE_LIMIT = 20_000


class PgVectorIndex:
    """Cosine search over `chunks.vector` with chunk ids as ids; see the module docstring."""

    in_database = True

    def __init__(self, store: Store, dimension: int) -> None:
        self.store = store
        self.dimension = int(dimension)
        self.dirty = False  # nothing is ever waiting to be saved
        self.exact_limit = EXACT_SCOPE_LIMIT

    @classmethod
    def open(cls, store: Store, dimension: int) -> PgVectorIndex:
        """The index of `store` for `dimension`-d vectors, its HNSW index made if need be."""
        index = cls(store, dimension)
        with store.transaction() as connection:
            stored = connection.execute(
                text("SELECT vector_dims(vector) FROM chunks WHERE vector IS NOT NULL LIMIT 1")
            ).scalar_one_or_none()
            if stored is not None and int(stored) != index.dimension:
                raise IndexStateError(
                    f"the database holds {stored}-dimensional vectors but the embedding model "
                    f"makes {index.dimension}; re-ingest with the model that built it or use "
                    "another database"
                )
            if not store.read_only:
                postgres.lock(connection, "assistant:hnsw")  # two processes making it at once
                connection.execute(text(index._create_index()))
        return index

    def _create_index(self) -> str:
        return (
            f"CREATE INDEX IF NOT EXISTS chunks_vector_hnsw_{self.dimension} ON chunks "
            f"USING hnsw ((vector::vector({self.dimension})) vector_cosine_ops)"
        )

    def __len__(self) -> int:
        with self.store.engine.connect() as connection:
            count = connection.execute(
                text("SELECT count(*) FROM chunks WHERE vector IS NOT NULL")
            ).scalar_one()
        return int(count)

    def ids(self) -> np.ndarray:
        with self.store.engine.connect() as connection:
            ids = connection.execute(
                text("SELECT id FROM chunks WHERE vector IS NOT NULL ORDER BY id")
            ).scalars()
            return np.asarray(list(ids), dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Set the vectors of these (already stored) chunks."""
        if len(ids) == 0:
            return
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dimension:
            raise IndexStateError(
                f"cannot add vectors of shape {matrix.shape} to a {self.dimension}-d index"
            )
        with self.store.transaction() as connection:
            postgres.write_vectors(connection, [int(i) for i in ids], list(matrix))

    def remove(self, ids: np.ndarray | list[int]) -> None:
        """Clear the vectors of these chunks (deleting a chunk row removes its vector anyway)."""
        if len(ids) == 0:
            return
        with self.store.transaction() as connection:
            connection.execute(
                text("UPDATE chunks SET vector = NULL WHERE id = ANY(:ids)"),
                {"ids": [int(i) for i in ids]},
            )

    def search(
        self, vector: np.ndarray, k: int, within: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The `k` nearest chunk ids to one query vector, with cosine scores, best first; with
        `within`, the nearest of those chunk ids only (a scope: see `scope.py`).

        HNSW applies a WHERE clause to the candidates its graph walk found (pgvector before 0.8
        has no iterative scan), so a scope can leave it short of `k`: a scope of up to
        `exact_limit` chunks is searched exactly, a larger one with the widest candidate list,
        and exactly after all when that still comes back short.
        """
        if k <= 0 or (within is not None and len(within) == 0):
            return []
        query = postgres.vector_literal(vector)
        if within is None:
            return self._nearest(query, k, None, exact=False)
        ids = [int(i) for i in within]
        wanted = min(k, len(ids))
        if len(ids) > self.exact_limit:
            hits = self._nearest(query, k, ids, exact=False)
            if len(hits) >= wanted:
                return hits
        return self._nearest(query, k, ids, exact=True)

    def _nearest(
        self, query: str, k: int, ids: list[int] | None, *, exact: bool
    ) -> list[tuple[int, float]]:
        cast = f"vector({self.dimension})"
        statement = text(
            f"SELECT id, 1 - (vector::{cast} <=> CAST(:query AS {cast})) AS score FROM chunks "
            "WHERE vector IS NOT NULL "
            + ("AND id = ANY(:ids) " if ids is not None else "")
            + f"ORDER BY vector::{cast} <=> CAST(:query AS {cast}) LIMIT :k"
        )
        parameters: dict[str, object] = {"query": query, "k": int(k)}
        if ids is not None:
            parameters["ids"] = ids
        with self.store.transaction() as connection:
            if exact:  # HNSW is an index scan: without it, every row in scope is compared
                connection.execute(text("SET LOCAL enable_indexscan = off"))
            else:
                _widen_search(connection, EF_SEARCH_LIMIT if ids is not None else k)
            rows = connection.execute(statement, parameters).all()
        return [(int(row[0]), float(row[1])) for row in rows]

    def differences(self, store: Store) -> tuple[np.ndarray, np.ndarray]:
        """The chunks without a vector (written by hand, or cleared by `rebuild`); the index can
        hold no vector of a chunk the store lost, so the second array is always empty."""
        with store.engine.connect() as connection:
            missing = connection.execute(
                text("SELECT id FROM chunks WHERE vector IS NULL ORDER BY id")
            ).scalars()
            return np.asarray(list(missing), dtype=np.int64), np.zeros(0, dtype=np.int64)

    def reconcile(self, store: Store) -> tuple[int, int]:
        """Give the chunks without a vector their stored embedding; returns (added, 0)."""
        missing, _ = self.differences(store)
        added = 0
        for start in range(0, len(missing), 5000):
            ids, vectors = store.embeddings(missing[start : start + 5000].tolist())
            if len(ids) and vectors.shape[1] != self.dimension:
                raise IndexStateError(
                    f"the database holds {vectors.shape[1]}-dimensional embeddings but the "
                    f"embedding model makes {self.dimension}; re-ingest with the model that "
                    "built it or use another database"
                )
            self.add(ids, vectors)
            added += len(ids)
        return added, 0

    def rebuild(self) -> int:
        """Write every chunk's vector again from its stored embedding; returns how many."""
        with self.store.transaction() as connection:
            connection.execute(text("UPDATE chunks SET vector = NULL"))
        added, _ = self.reconcile(self.store)
        return added

    def save(self) -> None:
        """Nothing to do: every vector was committed with its chunk."""


def _widen_search(connection: Connection, k: int) -> None:
    ef_search = min(max(40, EF_SEARCH_FACTOR * k), EF_SEARCH_LIMIT)
    connection.execute(text(f"SET LOCAL hnsw.ef_search = {int(ef_search)}"))
