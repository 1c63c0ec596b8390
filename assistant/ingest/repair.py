"""Repair a damaged home: move the database aside and rebuild it from the documents' files.

Everything in the database but the chat sessions comes from files, so a damaged database is
rebuilt rather than patched: `repair` reads what it still can from the damaged file (the paths of
the ingested files, and the chat sessions), builds a new database beside it with those sessions,
re-ingests those files and any paths given (which rebuilds the vector index), and only then moves
the damaged file aside as `assistant.db.damaged-<time>` (kept for a closer look) and puts the new
one in its place. The report says what could not be brought back: files that are gone, and
whether the damaged file's lists could be read to the end.

A PostgreSQL store has no file to move aside: the server keeps its own pages (write-ahead log,
checksums) and a damaged database is restored from the team's backup. What can fall out of step
there is the vectors, which live in the chunk rows (pgvector) rather than in an index file: a chunk
without one (an interrupted `reindex`, a row written by hand) is never found by dense search, and
nothing else writes it. So on PostgreSQL `repair` gives those chunks their stored embedding again
(`--force`: every chunk, as `reindex` does) and says so; it re-ingests nothing.

Like `ingest`, `repair` is a generator of progress events that ends with its `RepairReport`.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import insert

from assistant.config import display_url
from assistant.errors import InputError, StoreError
from assistant.index.database import sqlite_file
from assistant.index.home import Home
from assistant.index.schema import messages, sessions
from assistant.ingest.pipeline import IngestProgress, IngestSummary, ingest

SESSION_COLUMNS = ("id", "name", "summary", "folded", "conversation", "created_at", "updated_at")
MESSAGE_COLUMNS = (
    "session_id",
    "conversation",
    "question",
    "answer",
    "abstained",
    "interrupted",
    "citations",
    "created_at",
)


@dataclass(frozen=True)
class Salvage:
    """What could still be read from a damaged database."""

    paths: list[str]  # the files its documents came from
    paths_complete: bool  # False: part of the list was on damaged pages
    sessions: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    sessions_complete: bool


@dataclass
class RepairReport:
    problems: list[str]  # what the integrity check found; empty when the database was healthy
    moved_to: Path | None = None  # where the damaged database now is (None: nothing was done)
    summary: IngestSummary | None = None  # the re-ingest
    missing: list[str] = field(default_factory=list)  # files the old database named, now gone
    paths_complete: bool = True
    sessions_kept: int = 0
    messages_kept: int = 0
    sessions_complete: bool = True
    vectors_written: int | None = None  # PostgreSQL: chunks given their vector again

    def lost(self) -> list[str]:
        """What the repair could not bring back, one line each (empty: nothing was lost)."""
        lines = [f"{path}: the file is gone" for path in self.missing]
        if self.summary is not None:
            lines += [f"{item.path}: {item.reason}" for item in self.summary.skipped]
        if not self.paths_complete:
            lines.append(
                "some ingested files could not be named from the damaged database; "
                "ingest their folders again (`assistant ingest FOLDER`)"
            )
        if not self.sessions_complete:
            lines.append("some chat sessions or turns could not be read from the damaged database")
        return lines


def check_file(path: Path, limit: int = 20) -> list[str]:
    """What SQLite's full `integrity_check` finds wrong with the database at `path`."""
    try:
        with closing(_open_read_only(path)) as connection:
            rows = connection.execute(f"PRAGMA integrity_check({int(limit)})").fetchall()
    except sqlite3.Error as error:
        return [str(error)]
    return [str(row[0]) for row in rows if row[0] != "ok"]


def salvage(path: Path) -> Salvage:
    """Read the file paths and chat sessions that are still readable in a damaged database."""
    try:
        connection = _open_read_only(path)
    except sqlite3.Error:
        return Salvage([], False, [], [], False)
    with closing(connection):
        # The path index holds every path, so it often survives damage to the table itself.
        by_index, index_complete = _rows(connection, "SELECT DISTINCT path FROM documents")
        by_table, table_complete = _rows(connection, "SELECT path FROM documents NOT INDEXED")
        paths = sorted({str(row[0]) for row in by_index + by_table})
        session_rows, sessions_complete = _rows(
            connection, f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions ORDER BY id"
        )
        message_rows, messages_complete = _rows(
            connection, f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages ORDER BY id"
        )
    found = [dict(zip(SESSION_COLUMNS, row, strict=True)) for row in session_rows]
    kept = {row["id"] for row in found}
    turns = [dict(zip(MESSAGE_COLUMNS, row, strict=True)) for row in message_rows]
    return Salvage(
        paths,
        index_complete or table_complete,
        found,
        [turn for turn in turns if turn["session_id"] in kept],
        sessions_complete and messages_complete,
    )


def repair(
    home: Home, paths: Sequence[Path] = (), force: bool = False
) -> Iterator[IngestProgress | RepairReport]:
    """Rebuild a damaged home's database and index (a healthy one only with `force`).

    Call it holding `home.writing()`, before anything has opened the home's store.
    """
    if home.in_database:
        if paths:
            raise InputError(
                "on PostgreSQL `repair` rebuilds no database, so it ingests nothing; "
                "use `assistant ingest PATH...`"
            )
        yield _repair_vectors(home, force)
        return
    database = sqlite_file(home.config.database)
    if database is None:
        raise StoreError(
            f"`repair` rebuilds SQLite databases, not {display_url(home.config.database)}; "
            "restore a damaged one from its backup, and `assistant reindex` rebuilds the vector "
            "index from it"
        )
    if not database.exists():
        raise InputError(f"there is no database at {database} to repair")
    for given in paths:
        if not given.exists():
            raise InputError(f"no such file or folder: {given}")
    problems = check_file(database)
    if not problems and not force:
        yield RepairReport([])
        return
    found = salvage(database)
    report = RepairReport(
        problems,
        missing=[p for p in found.paths if not Path(p).is_file()],
        paths_complete=found.paths_complete,
        sessions_complete=found.sessions_complete,
    )
    # The new database is built beside the damaged one, which stays in place until the end:
    # an interrupted repair can simply be run again.
    rebuilt = database.with_name(database.name + ".rebuilding")
    for leftover in _with_companions(rebuilt):
        leftover.unlink(missing_ok=True)
    home.drop_index()  # its ids are the old database's chunk ids
    builder = home.with_config(home.config.replace(database_url=f"sqlite:///{rebuilt}"))
    try:
        report.sessions_kept, report.messages_kept = _restore_sessions(builder, found)
        report.sessions_complete &= report.sessions_kept == len(found.sessions)
        again = [Path(p) for p in found.paths if Path(p).is_file()] + list(paths)
        for event in ingest(builder, again):
            if isinstance(event, IngestSummary):
                report.summary = event
            else:
                yield event
    finally:
        builder.close()
    report.moved_to = _move_aside(database, "damaged" if problems else "replaced")
    for source, target in zip(_with_companions(rebuilt), _with_companions(database), strict=True):
        if source.exists():
            os.replace(source, target)
    yield report


def _repair_vectors(home: Home, force: bool) -> RepairReport:
    """PostgreSQL: write the vectors of the chunks that lack one (with `force`, of every chunk)
    from the embeddings stored beside them; see the module docstring."""
    if home.is_empty():  # no vectors to write (and no model to load to learn their size)
        return RepairReport([], vectors_written=0)
    missing, _ = home.index.differences(home.store)
    problems = [f"{len(missing)} chunks have no vector, so dense search cannot find them"]
    report = RepairReport(problems if len(missing) else [], vectors_written=0)
    if force:
        report.vectors_written = home.rebuild_index()
    elif len(missing):
        report.vectors_written, _ = home.index.reconcile(home.store)
    return report


def _restore_sessions(home: Home, found: Salvage) -> tuple[int, int]:
    """Copy the readable sessions into the new store; one whose rows are garbled is left out."""
    sessions_kept = messages_kept = 0
    for session in found.sessions:
        turns = [turn for turn in found.messages if turn["session_id"] == session["id"]]
        try:
            with home.store.transaction() as connection:
                connection.execute(insert(sessions).values(**session))
                if turns:
                    connection.execute(insert(messages), turns)
        except StoreError:
            continue
        sessions_kept += 1
        messages_kept += len(turns)
    return sessions_kept, messages_kept


def _open_read_only(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return connection


def _rows(connection: sqlite3.Connection, query: str) -> tuple[list[tuple[Any, ...]], bool]:
    """The rows a query yields before it hits damage, and whether it reached the end."""
    rows: list[tuple[Any, ...]] = []
    try:
        for row in connection.execute(query):
            rows.append(tuple(row))
    except sqlite3.Error as error:
        return rows, str(error).startswith("no such table")  # an older schema: nothing to read
    return rows, True


def _with_companions(database: Path) -> list[Path]:
    """The database file and SQLite's WAL files beside it."""
    return [database] + [database.with_name(database.name + suffix) for suffix in ("-wal", "-shm")]


def _move_aside(database: Path, why: str) -> Path:
    """Rename the database (with its WAL files) to `<name>.<why>-<time>`; returns the new path."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = database.with_name(f"{database.name}.{why}-{stamp}")
    number = 1
    while target.exists():
        number += 1
        target = database.with_name(f"{database.name}.{why}-{stamp}-{number}")
    for source, moved in zip(_with_companions(database), _with_companions(target), strict=True):
        if source.exists():
            os.replace(source, moved)
    return target
