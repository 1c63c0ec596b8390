"""The home folder: one place that opens the store, the vector index and the embedder.

Everything is opened lazily, so commands that only read the database (`docs`, `info`) or find
nothing to embed (re-ingesting an unchanged folder) never pay for loading a model. A home is built
with one embedding model; it is recorded in the store, and using another one is refused with an
explanation instead of silently mixing vectors from two models.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assistant.config import Config
from assistant.embedding import Embedder
from assistant.errors import BusyError, IndexStateError, StoreError
from assistant.index import VectorIndex
from assistant.retrieval import Retriever
from assistant.store import Store

EMBEDDING_MODEL_KEY = "embedding_model"
EMBEDDING_DIMENSION_KEY = "embedding_dimension"


class Home:
    """The state of one assistant: database, vector index and the models that built them."""

    def __init__(self, config: Config, embedder: Embedder | None = None) -> None:
        self.config = config
        self._store: Store | None = None
        self._index: VectorIndex | None = None
        self._embedder: Embedder | None = embedder  # share one loaded model between homes
        self._recorded = False

    @property
    def path(self) -> Path:
        return self.config.home

    @property
    def store(self) -> Store:
        if self._store is None:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise StoreError(f"cannot create the home folder {self.path}: {error}") from None
            self._store = Store(self.config.database)
            self._check_embedding_model(self._store)
        return self._store

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder.from_config(self.config)
        if not self._recorded:
            store = self.store
            if store.get_setting(EMBEDDING_MODEL_KEY) is None:
                store.set_setting(EMBEDDING_MODEL_KEY, self.config.embedding_model)
                store.set_setting(EMBEDDING_DIMENSION_KEY, str(self._embedder.dimension))
            self._recorded = True
        return self._embedder

    @property
    def dimension(self) -> int:
        recorded = self.store.get_setting(EMBEDDING_DIMENSION_KEY)
        return int(recorded) if recorded is not None else self.embedder.dimension

    @property
    def index(self) -> VectorIndex:
        if self._index is None:
            self._index = VectorIndex.open(self.config.index_path, self.dimension, self.store)
        return self._index

    def retriever(self) -> Retriever:
        return Retriever(
            self.store,
            self.index,
            self.embedder,
            mode=self.config.retrieval_mode,
            candidates=self.config.candidates,
            rrf_k=self.config.rrf_k,
        )

    def is_empty(self) -> bool:
        return self.store.counts()["chunks"] == 0

    def save_index(self) -> None:
        if self._index is not None and self._index.dirty:
            self._index.save()

    def rebuild_index(self) -> int:
        """Throw the vector index away and rebuild it from the embeddings in the store."""
        self.config.index_path.unlink(missing_ok=True)
        self._index = VectorIndex(self.config.index_path, self.dimension)
        added, _ = self._index.reconcile(self.store)
        self._index.save()
        return added

    def close(self) -> None:
        self.save_index()
        if self._store is not None:
            self._store.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the home's write lock: one writer (ingest, forget, reindex) at a time."""
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / "write.lock"
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BusyError(
                    f"another assistant process is writing to {self.path} (an ingest?); "
                    "wait for it to finish and try again"
                ) from None
            yield
        finally:
            os.close(handle)

    def _check_embedding_model(self, store: Store) -> None:
        recorded = store.get_setting(EMBEDDING_MODEL_KEY)
        if recorded is not None and recorded != self.config.embedding_model:
            raise IndexStateError(
                f"this home was built with the embedding model {recorded!r}, not "
                f"{self.config.embedding_model!r}; use that model or another --home"
            )
