"""Opening the database: SQLite's settings, read-only homes, and damaged files.

The store speaks SQLAlchemy; SQLite's particulars live here, in one place:

- WAL journaling, so readers (ask, chat) keep working while an ingest writes.
- A database we may not write (a home shared read-only, another user's folder) is opened
  read-only, so that listing, searching and `info` still work. SQLite shares a WAL database
  through a `-shm` file beside it; when the folder is read-only that file cannot be made, and
  with no `-wal` file present (no writer has the database open) it is read as immutable.
- A damaged file (SQLite's "database disk image is malformed" or "file is not a database") becomes
  one `DatabaseDamagedError`, wherever a query hits it, naming `assistant repair`; a write refused
  because the file is read-only becomes a `StoreError` that says so. Both come from SQLAlchemy's
  `handle_error` hook, so no query needs its own handling.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import URL, Engine, create_engine, event, make_url, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from assistant.config import display_url
from assistant.errors import DatabaseDamagedError, StoreError
from assistant.index import postgres

# SQLite's primary result codes (the low byte of an extended code).
SQLITE_READONLY = 8
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26


def sqlite_file(url: str) -> Path | None:
    """The file of a `sqlite:///` URL; None for other databases and in-memory SQLite."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(str(parsed.database))


def can_write(path: Path) -> bool:
    """Whether we may write the database file at `path`: the file (if any) and its folder."""
    if path.exists() and not os.access(path, os.W_OK):
        return False
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the folder will be created inside the nearest existing one
    return os.access(folder, os.W_OK | os.X_OK)


def open_engine(url: str, read_only: bool = False) -> Engine:
    """An engine for `url`: SQLite gets its pragmas, error translation and read-only mode."""
    path = sqlite_file(url)
    target: str | URL = url
    if path is not None and read_only:
        if not path.exists():
            raise StoreError(f"there is no database at {path} to open read-only")
        target = _read_only_url(path)
    try:
        engine = create_engine(target)
    except (SQLAlchemyError, ImportError, ValueError) as error:
        raise StoreError(f"cannot open the database {display_url(url)}: {error}") from error
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _read_only_pragmas if read_only else _pragmas)
        event.listen(engine, "handle_error", _translator(str(path or url)))
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "handle_error", postgres.translator(display_url(url)))
    return engine


def backend(url: str) -> str:
    """Where the rows and the vectors live, as `assistant info` shows it."""
    try:
        name = make_url(url).get_backend_name()
    except ArgumentError:
        return "unknown"
    return {"sqlite": "sqlite+faiss", "postgresql": "postgresql+pgvector"}.get(
        name, f"{name}+faiss"
    )


def quick_check(engine: Engine, limit: int = 10) -> list[str]:
    """What SQLite's `PRAGMA quick_check` finds wrong (empty when healthy or not SQLite)."""
    if engine.dialect.name != "sqlite":
        return []
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(f"PRAGMA quick_check({int(limit)})")).scalars().all()
    except DatabaseDamagedError as error:
        return [str(error.__cause__ or error)]
    return [str(row) for row in rows if str(row) != "ok"]


def is_damage(error: BaseException) -> bool:
    """Whether a sqlite3 error says the file is corrupt or not a database at all."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


def damaged_message(where: str, detail: str) -> str:
    return (
        f"the database {where} is damaged ({detail}); `assistant repair` moves it aside and "
        "rebuilds it from your documents"
    )


def _read_only_url(path: Path) -> URL:
    """`mode=ro`, or `immutable=1` when SQLite cannot share the file from a read-only folder."""
    database = f"file:{quote(str(path.resolve()))}"
    options = {"mode": "ro"}
    try:
        with closing(sqlite3.connect(f"{database}?mode=ro", uri=True)) as probe:
            probe.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as error:
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        wal = path.with_name(path.name + "-wal")
        if code == SQLITE_READONLY and not wal.exists():
            options = {"immutable": "1"}
    return URL.create("sqlite", database=database, query={**options, "uri": "true"})


def _translator(where: str) -> Any:
    def translate(context: ExceptionContext) -> None:
        error = context.original_exception
        if is_damage(error):
            raise DatabaseDamagedError(damaged_message(where, str(error))) from error
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF == SQLITE_READONLY:
            raise StoreError(
                f"cannot write to the database {where}: it is read-only here ({error}); "
                "check the permissions of the file and its folder"
            ) from error

    return translate


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL: readers (ask, chat) keep working while an ingest writes; synchronous=NORMAL is safe
    # with WAL (a crash loses at most the last transactions, never corrupts the file).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _read_only_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")  # setting the journal mode would be a write
    cursor.close()
