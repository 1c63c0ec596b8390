"""The home folder: one place that opens the store, the vector index and the embedder.

Everything is opened lazily, so commands that only read the database (`docs`, `info`) or find
nothing to embed (re-ingesting an unchanged folder) never pay for loading a model. A home is built
with one embedding model; it is recorded in the store, and using another one is refused with an
explanation instead of silently mixing vectors from two models.

A home we may not write (a shared folder, another user's) is opened read-only: reading commands
work, nothing is saved, and writing commands (`writing()`) say the home is not writable. `check()`
is what `assistant info` reports: the database's own consistency check and whether the vector
index is in step with it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.errors import BusyError, DatabaseDamagedError, IndexStateError, StoreError
from assistant.index.database import can_write, damaged_message, sqlite_file
from assistant.index.retrieval import Retriever
from assistant.index.store import Store
from assistant.index.vectors import VectorIndex

EMBEDDING_MODEL_KEY = "embedding_model"
EMBEDDING_DIMENSION_KEY = "embedding_dimension"


@dataclass(frozen=True)
class HomeCheck:
    """What `Home.check` found: the database's state, the index's, and what to do about them."""

    database: str  # "ok" or "damaged"
    index: str
    problems: list[str]  # each written for the user, naming the command that fixes it


class Home:
    """The state of one assistant: database, vector index and the models that built them."""

    def __init__(self, config: Config, embedder: Embedder | None = None) -> None:
        self.config = config
        self._store: Store | None = None
        self._index: VectorIndex | None = None
        self._embedder: Embedder | None = embedder  # share one loaded model between homes
        self._recorded = False

    def with_config(self, config: Config) -> Home:
        """Another home (or this one with other settings), sharing the embedder once loaded."""
        return Home(config, self._embedder)

    @property
    def path(self) -> Path:
        return self.config.home

    @property
    def store(self) -> Store:
        if self._store is None:
            self._make_folder()
            read_only = not self.writable()
            database = sqlite_file(self.config.database)
            if read_only and database is not None and not database.exists():
                raise StoreError(
                    f"nothing is ingested in {self.path} and it is not writable; use another --home"
                )
            self._store = Store(self.config.database, read_only=read_only)
            self._check_embedding_model(self._store)
        return self._store

    def writable(self) -> bool:
        """Whether we may write the home folder and its database."""
        if not os.access(self.path, os.W_OK | os.X_OK):
            return False
        database = sqlite_file(self.config.database)
        return database is None or can_write(database)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder.from_config(self.config)
        if not self._recorded:
            store = self.store
            if not store.read_only and store.get_setting(EMBEDDING_MODEL_KEY) is None:
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
        # A read-only home keeps its index as it is; it is brought in step again on each open.
        if self._index is not None and self._index.dirty and not self.store.read_only:
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

    def check(self) -> HomeCheck:
        """The database's consistency check and the index's state, without changing either."""
        try:
            store = self.store
            damage = store.check()
        except DatabaseDamagedError as error:
            return HomeCheck("damaged", "not checked", [str(error)])
        if damage:
            where = str(sqlite_file(self.config.database) or self.config.database)
            problem = damaged_message(where, "; ".join(damage[:3]))
            return HomeCheck("damaged", "not checked", [problem])
        path = self.config.index_path
        if not path.exists():
            note = "none yet (built on first use)" if store.counts()["chunks"] else "none yet"
            return HomeCheck("ok", note, [])
        recorded = store.get_setting(EMBEDDING_DIMENSION_KEY)
        try:
            index = VectorIndex.open(path, int(recorded) if recorded else None)
        except IndexStateError as error:
            return HomeCheck("ok", "unreadable", [str(error)])
        missing, stale = index.differences(store)
        if not len(missing) and not len(stale):
            return HomeCheck("ok", f"{len(index)} vectors, in step with the database", [])
        return HomeCheck(
            "ok",
            f"{len(index)} vectors; lacks {len(missing)} chunks of the database and holds "
            f"{len(stale)} it no longer has (brought in step on next use)",
            [],
        )

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the home's write lock: one writer (ingest, forget, reindex) at a time."""
        self._make_folder()
        if not self.writable():
            raise StoreError(
                f"the home {self.path} is not writable (check its permissions, or use another "
                "--home); reading commands such as `docs` and `search` still work"
            )
        lock_path = self.path / "write.lock"
        try:
            handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"cannot lock the home {self.path}: {error.strerror}") from None
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

    def _make_folder(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"the home {self.path} is a file, not a folder; use another --home")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot create the home folder {self.path}: {error.strerror}"
            ) from None

    def _check_embedding_model(self, store: Store) -> None:
        recorded = store.get_setting(EMBEDDING_MODEL_KEY)
        if recorded is not None and recorded != self.config.embedding_model:
            raise IndexStateError(
                f"this home was built with the embedding model {recorded!r}, not "
                f"{self.config.embedding_model!r}; use that model or another --home"
            )
