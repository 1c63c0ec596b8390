"""The database schema and its migrations, in one place.

Tables are SQLAlchemy Core definitions. Schema changes are named migrations, applied once each, in
order, and recorded in `schema_migrations` (see `migrate`); a migration is never edited after it
has shipped, only followed by a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
)

from assistant.index import postgres

MIGRATION_LOCK = "assistant:migrations"

metadata = MetaData()

schema_migrations = Table(
    "schema_migrations",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("applied_at", Float, nullable=False),
)

documents = Table(
    "documents",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False, unique=True),  # path, or path#id for a JSONL row
    Column("path", Text, nullable=False, index=True),  # the file the document came from
    Column("format", String(20), nullable=False),
    Column("title", Text),
    Column("content_hash", String(64), nullable=False),
    Column("file_hash", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("mtime", Float, nullable=False),
    Column("chunk_count", Integer, nullable=False, default=0),
    Column("ingested_at", Float, nullable=False),
    sqlite_autoincrement=True,
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "document_id",
        Integer,
        ForeignKey("documents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("ordinal", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("start_line", Integer),
    Column("end_line", Integer),
    Column("page", Integer),
    Column("heading", Text, nullable=False, default=""),
    Column("token_count", Integer, nullable=False),
    Column("embedding", LargeBinary, nullable=False),
    sqlite_autoincrement=True,
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)


sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("summary", Text, nullable=False, default=""),
    Column("folded", Integer, nullable=False, default=0),  # turns folded into the summary
    Column("conversation", Integer, nullable=False, default=1),  # bumped by /reset
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    sqlite_autoincrement=True,
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "session_id",
        Integer,
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("conversation", Integer, nullable=False),
    Column("question", Text, nullable=False),
    Column("answer", Text, nullable=False),
    Column("abstained", Integer, nullable=False, default=0),
    Column("interrupted", Integer, nullable=False, default=0),
    Column("citations", Text, nullable=False, default="[]"),  # JSON list of cited passages
    Column("created_at", Float, nullable=False),
    sqlite_autoincrement=True,
)


# ---------------------------------------------------------------------------------------------
# Migrations: append only. Each runs once, in order, inside its own transaction.


def _create_core_tables(connection: Connection) -> None:
    metadata.create_all(connection, tables=[documents, chunks, settings], checkfirst=True)


def _create_sessions(connection: Connection) -> None:
    metadata.create_all(connection, tables=[sessions, messages], checkfirst=True)


def _create_fts(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        return
    for statement in (
        "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5("
        "text, heading, content='chunks', content_rowid='id', tokenize='porter unicode61')",
        "CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN "
        "INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading); END",
        "CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN "
        "INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) "
        "VALUES ('delete', old.id, old.text, old.heading); END",
        "CREATE TRIGGER IF NOT EXISTS chunks_fts_update AFTER UPDATE ON chunks BEGIN "
        "INSERT INTO chunks_fts(chunks_fts, rowid, text, heading) "
        "VALUES ('delete', old.id, old.text, old.heading); "
        "INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading); END",
        "INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')",
    ):
        connection.exec_driver_sql(statement)


def _create_full_text(connection: Connection) -> None:
    """PostgreSQL's lexical index: a generated tsvector (text weighted A, heading B) and GIN."""
    if connection.dialect.name != "postgresql":
        return
    for statement in (
        "ALTER TABLE chunks ADD COLUMN search tsvector GENERATED ALWAYS AS ("
        "setweight(to_tsvector('english', text), 'A') || "
        "setweight(to_tsvector('english', heading), 'B')) STORED",
        "CREATE INDEX chunks_search ON chunks USING gin (search)",
    ):
        connection.exec_driver_sql(statement)


def _create_vectors(connection: Connection) -> None:
    """PostgreSQL's vectors: a pgvector column on chunks, filled in the chunk's own transaction.

    The column has no dimension: that belongs to the home's embedding model, recorded in
    `settings` once known, and the HNSW index over `vector::vector(dimension)` is made then
    (`pgvectors.PgVectorIndex.open`).
    """
    if connection.dialect.name != "postgresql":
        return
    connection.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    connection.exec_driver_sql("ALTER TABLE chunks ADD COLUMN vector vector")


def _index_token_counts(connection: Connection) -> None:
    """PostgreSQL's BM25 needs the number of chunks and their average length on every lexical
    search (`postgres.LEXICAL_SEARCH`); this index gives both from an index-only scan, without
    reading the wide chunk rows. FTS5 keeps these totals itself."""
    if connection.dialect.name != "postgresql":
        return
    # A plain CREATE INDEX, not CONCURRENTLY, on purpose. While it builds it holds a SHARE lock
    # on chunks: searches go on, writers (ingests) wait for it rather than fail, and the build
    # reads the table once and sorts one integer per chunk: 0.2 s for 200,000 chunks (411 MB;
    # PostgreSQL 16, 2 cores; so about a second per million). CONCURRENTLY cannot run in
    # the migration's transaction, which records the migration with its change and holds the
    # migration lock (`migrate`); outside it, it waits for every transaction of the database
    # older than itself (another process waiting for that lock included), and a build that fails
    # leaves an INVALID index behind. For a store where the pause matters, an administrator can
    # run `CREATE INDEX CONCURRENTLY chunks_token_count ON chunks (token_count)` before
    # upgrading: IF NOT EXISTS then keeps it (a schema-neutral change to this migration).
    connection.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS chunks_token_count ON chunks (token_count)"
    )


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("0001_documents_chunks_settings", _create_core_tables),
    ("0002_chunks_fts5", _create_fts),
    ("0003_sessions_messages", _create_sessions),
    ("0004_chunks_tsvector", _create_full_text),
    ("0005_chunks_pgvector", _create_vectors),
    ("0006_chunks_token_count_index", _index_token_counts),
]
# Migrations that change nothing on SQLite: a read-only SQLite home is not held up by them.
POSTGRESQL_ONLY = frozenset(
    {"0004_chunks_tsvector", "0005_chunks_pgvector", "0006_chunks_token_count_index"}
)


def pending_migrations(engine: Engine) -> list[str]:
    """The migrations not yet recorded, without writing anything (for a read-only database)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(schema_migrations.name):
            return [name for name, _ in MIGRATIONS]
        done = set(connection.execute(select(schema_migrations.c.name)).scalars())
    skip = POSTGRESQL_ONLY if engine.dialect.name == "sqlite" else frozenset()
    return [name for name, _ in MIGRATIONS if name not in done and name not in skip]


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations not yet recorded; returns their names.

    Processes that open one PostgreSQL database at once take turns (an advisory lock), and each
    looks again, holding it, whether another has just applied the migration.
    """
    applied: list[str] = []
    with engine.begin() as connection:
        postgres.lock(connection, MIGRATION_LOCK)
        metadata.create_all(connection, tables=[schema_migrations], checkfirst=True)
        done = set(connection.execute(select(schema_migrations.c.name)).scalars())
    for name, apply in MIGRATIONS:
        if name in done:
            continue
        with engine.begin() as connection:
            postgres.lock(connection, MIGRATION_LOCK)
            recorded = select(schema_migrations.c.name).where(schema_migrations.c.name == name)
            if connection.execute(recorded).first() is not None:
                continue
            apply(connection)
            connection.execute(insert(schema_migrations).values(name=name, applied_at=time.time()))
        applied.append(name)
    return applied
