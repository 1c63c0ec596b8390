"""The home folder: one place that opens the store, the vector index and the embedder.

Everything is opened lazily, so commands that only read the database (`docs`, `info`) or find
nothing to embed (re-ingesting an unchanged folder) never pay for loading a model. A home is built
with one embedding model; it is recorded in the store, and using another one is refused with an
explanation instead of silently mixing vectors from two models.

A home we may not write (a shared folder, another user's) is opened read-only: reading commands
work, nothing is saved, and writing commands (`writing()`) say the home is not writable. `check()`
is what `assistant info` reports: the database's own consistency check and whether the vector
index is in step with it.

Whatever changes chunks goes through `replace` or `forget`, which change the database and the
index together, in the one order that survives a crash: the index is opened (and so reconciled
with the database) first, the database commits, and only then does the index change, in memory.
The index reaches the disk later, atomically (`save_index`, `close`), so a crash or a kill leaves
an index file that is merely behind the committed database, and the next open reconciles it.
Opening the index after the commit instead would add the new chunks twice: once by reconciling,
once by the caller.

A home whose database is PostgreSQL (`ASSISTANT_DATABASE_URL`) keeps its vectors in the database
too (`pgvectors`), written with their rows, and its writers take turns per file inside the
database (`postgres.lock_files`) rather than on a lock file in one machine's home folder, so
ingests from several processes or machines into one database run at once.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.errors import BusyError, DatabaseDamagedError, IndexStateError, StoreError
from assistant.index.database import backend, can_write, damaged_message, sqlite_file
from assistant.index.pgvectors import PgVectorIndex
from assistant.index.retrieval import Retriever
from assistant.index.store import NewDocument, Store
from assistant.index.vectors import VectorIndex, Vectors

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
        self._index: Vectors | None = None
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
    def index(self) -> Vectors:
        if self._index is None:
            if self.in_database:
                self._index = PgVectorIndex.open(self.store, self.dimension)
            else:
                self._index = VectorIndex.open(self.config.index_path, self.dimension, self.store)
        return self._index

    @property
    def in_database(self) -> bool:
        """Whether the vectors live in the database (PostgreSQL) rather than a FAISS file."""
        return backend(self.config.database) == "postgresql+pgvector"

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

    def replace(
        self, path: str, documents: Sequence[NewDocument], keep_keys: Iterable[str] = ()
    ) -> tuple[list[int], list[int]]:
        """Make `documents` (plus the stored ones under `keep_keys`) the content of file `path`,
        in the database and the vector index; returns the chunk ids removed and added.

        The vectors are the chunks' own embeddings, checked before anything is written so that
        a wrong one cannot leave a committed chunk the index refuses. See the module docstring
        for the order of the writes.
        """
        index = self.index  # opened, and reconciled, before the commit: never after it
        vectors = [chunk.embedding for document in documents for chunk in document.chunks]
        for vector in vectors:
            if np.shape(vector) != (index.dimension,):
                raise IndexStateError(
                    f"a chunk of {path} has an embedding of shape {np.shape(vector)}, not "
                    f"({index.dimension},) as the vector index holds"
                )
        removed, added = self.store.replace_file(path, documents, keep_keys)
        if index.in_database:  # the vectors came and went with their rows
            return removed, added
        index.remove(removed)
        if added:
            index.add(np.asarray(added, dtype=np.int64), np.vstack(vectors))
        return removed, added

    def forget(self, paths: Iterable[str]) -> list[int]:
        """Delete every document of these files, rows and vectors; returns the chunk ids removed."""
        wanted = list(paths)
        if not wanted:
            return []
        index = self.index  # as in `replace`: opened before the commit
        removed = self.store.forget_paths(wanted)
        if not index.in_database:
            index.remove(removed)
        return removed

    def touch(self, path: str, size: int, mtime: float, file_hash: str | None = None) -> None:
        """Record a new size and mtime (and hash) for a file whose documents did not change.

        Only the database changes: no chunk does, so the vectors stay as they are.
        """
        self.store.touch_file(path, size, mtime, file_hash)

    def save_index(self) -> None:
        # A read-only home keeps its index as it is; it is brought in step again on each open.
        if self._index is not None and self._index.dirty and not self.store.read_only:
            self._index.save()

    def rebuild_index(self) -> int:
        """Throw the vector index away and rebuild it from the embeddings in the store."""
        if self.in_database:
            return PgVectorIndex.open(self.store, self.dimension).rebuild()
        self.drop_index()
        self._index = VectorIndex(self.config.index_path, self.dimension)
        added, _ = self._index.reconcile(self.store)
        self._index.save()
        return added

    def drop_index(self) -> None:
        """Delete the vector index, on disk and in memory; the next use builds it from the
        database. Does not open the database (`repair` calls it on a damaged home)."""
        self.config.index_path.unlink(missing_ok=True)
        self._index = None

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
        if self.in_database:
            return self._check_in_database(store)
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

    def _check_in_database(self, store: Store) -> HomeCheck:
        recorded = store.get_setting(EMBEDDING_DIMENSION_KEY)
        if recorded is None:
            return HomeCheck("ok", "pgvector in the database, none yet", [])
        index = PgVectorIndex(store, int(recorded))
        missing, _ = index.differences(store)
        note = f"{len(index)} vectors in the database (pgvector, HNSW cosine)"
        if len(missing):
            note += f"; {len(missing)} chunks lack one (`assistant repair` writes them)"
        return HomeCheck("ok", note, [])

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the home's write lock: one writer (ingest, forget, reindex) at a time.

        On PostgreSQL, writers take turns per file inside the database instead (see the module
        docstring), so this only checks that the home may be written.
        """
        self._make_folder()
        if not self.writable():
            raise StoreError(
                f"the home {self.path} is not writable (check its permissions, or use another "
                "--home); reading commands such as `docs` and `search` still work"
            )
        if self.in_database:
            yield
            return
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
