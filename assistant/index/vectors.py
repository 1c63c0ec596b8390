"""The FAISS vector index, kept on disk under the home, ids equal to chunk ids.

The index is a cache of the embeddings stored in the database: every save is atomic (a temporary
file, fsync, then rename), and every load reconciles the index with the store, adding the chunks it
lacks and removing the ones the store no longer has. So a crash between a database commit and an
index save costs nothing but a few re-added vectors at the next start.

Search is exact inner product (vectors are L2-normalized, so scores are cosine similarities), on
one thread: for a single query, FAISS's threads cost more in synchronization than they save, and
on a busy machine a waiting thread stalls the query. `evals/bench/retrieval.py` measures it against
all cores and an approximate index (evals/README.md, Retrieval).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np

from assistant.errors import IndexStateError
from assistant.index.store import Store


class Vectors(Protocol):
    """What `Home` and `Retriever` need of a vector index: FAISS here, pgvector in `pgvectors`.

    `in_database` says whether the vectors are written with the chunk rows themselves (so `Home`
    has nothing left to add or remove after a commit) or kept beside them as a cache.
    """

    dimension: int
    dirty: bool
    in_database: bool

    def __len__(self) -> int: ...
    def ids(self) -> np.ndarray: ...
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray | list[int]) -> None: ...
    def search(
        self, vector: np.ndarray, k: int, within: np.ndarray | None = None
    ) -> list[tuple[int, float]]: ...
    def differences(self, store: Store) -> tuple[np.ndarray, np.ndarray]: ...
    def reconcile(self, store: Store) -> tuple[int, int]: ...
    def save(self) -> None: ...


class VectorIndex:
    """An `IndexIDMap2(IndexFlatIP)`: exact cosine search with chunk ids as FAISS ids."""

    in_database = False  # a cache beside the database, brought in step on open

    def __init__(self, path: Path, dimension: int, index: faiss.Index | None = None) -> None:
        self.path = path
        self.dimension = dimension
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.dirty = False

    @classmethod
    def open(cls, path: Path, dimension: int | None, store: Store | None = None) -> VectorIndex:
        """Load the index at `path` (or start an empty one) and bring it in step with `store`.

        A `dimension` of None takes the file's own (to inspect an index without a model).
        """
        index: faiss.Index | None = None
        if path.exists():
            try:
                index = faiss.read_index(str(path))
            except RuntimeError as error:
                raise IndexStateError(
                    f"the vector index {path} is unreadable ({str(error).splitlines()[0]}); "
                    "run `assistant reindex` to rebuild it from the database"
                ) from None
            if dimension is None:
                dimension = int(index.d)
            if index.d != dimension:
                raise IndexStateError(
                    f"the vector index {path} holds {index.d}-dimensional vectors but the "
                    f"embedding model makes {dimension}; run `assistant reindex`"
                )
        if dimension is None:
            raise IndexStateError(f"there is no vector index at {path}")
        vectors = cls(path, dimension, index)
        if store is not None:
            vectors.reconcile(store)
        return vectors

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        id_map: Any = self.index.id_map  # type: ignore[attr-defined]
        return np.asarray(faiss.vector_to_array(id_map), dtype=np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dimension:
            raise IndexStateError(
                f"cannot add vectors of shape {matrix.shape} to a {self.dimension}-d index"
            )
        self.index.add_with_ids(matrix, np.ascontiguousarray(ids, dtype=np.int64))
        self.dirty = True

    def remove(self, ids: np.ndarray | list[int]) -> None:
        if len(ids) == 0:
            return
        self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64))  # type: ignore[arg-type]
        self.dirty = True

    def search(
        self, vector: np.ndarray, k: int, within: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The `k` nearest chunk ids to one query vector, with cosine scores, best first; with
        `within`, the nearest of those chunk ids only (a scope: see `scope.py`).

        A scope is an ID selector inside the search: the flat index still scores only the
        selected vectors, exactly, so a scope of ten chunks yields those ten whatever their rank
        among all the others.
        """
        limit = min(k, len(self)) if within is None else min(k, len(self), len(within))
        if limit <= 0:
            return []
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        parameters = None
        if within is not None:
            parameters = faiss.SearchParameters()
            # Kept in a name for the duration of the search: the parameters do not own it.
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(within, dtype=np.int64))
            parameters.sel = selector
        with one_thread():
            scores, ids = self.index.search(query, limit, params=parameters)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i != -1]

    def differences(self, store: Store) -> tuple[np.ndarray, np.ndarray]:
        """The chunk ids the store has and the index lacks, and those only the index has."""
        wanted = store.chunk_ids()
        have = self.ids()
        missing = np.setdiff1d(wanted, have, assume_unique=True)
        stale = np.setdiff1d(have, wanted, assume_unique=True)
        return missing, stale

    def reconcile(self, store: Store) -> tuple[int, int]:
        """Add the store's chunks the index lacks, drop the ones the store lost.

        Returns (added, removed). Cheap when nothing differs: one id query and a set difference.
        """
        missing, stale = self.differences(store)
        if len(stale):
            self.remove(stale)
        added = 0
        for start in range(0, len(missing), 5000):
            ids, vectors = store.embeddings(missing[start : start + 5000].tolist())
            if len(ids) and vectors.shape[1] != self.dimension:
                raise IndexStateError(
                    f"the database holds {vectors.shape[1]}-dimensional embeddings but the "
                    f"embedding model makes {self.dimension}; re-ingest with the model that "
                    "built it or start a new home"
                )
            self.add(ids, vectors)
            added += len(ids)
        return added, len(stale)

    def save(self) -> None:
        """Write atomically: a temporary file in the same folder, fsync, then rename over."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            prefix=".index-", suffix=".tmp", dir=str(self.path.parent)
        )
        os.close(handle)
        try:
            faiss.write_index(self.index, temporary)
            with open(temporary, "rb") as written:
                os.fsync(written.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self.dirty = False


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """FAISS on one OpenMP thread for the duration (single-query searches)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)
