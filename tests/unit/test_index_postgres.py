"""The PostgreSQL store against a real server (tests/postgres.py): migrations, full-text ranking,
vectors written with their rows, two ingesting processes at once, and errors that name the cause
without showing the password."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, text

from assistant.config import Config
from assistant.errors import IndexStateError, StoreError
from assistant.index.database import backend, display_url
from assistant.index.home import Home
from assistant.index.pgvectors import PgVectorIndex
from assistant.index.schema import MIGRATIONS, POSTGRESQL_ONLY, pending_migrations
from assistant.index.store import NewChunk, NewDocument, Store
from tests.fakes import DIMENSIONS, fake_embed
from tests.postgres import PASSWORD_ROLE, Server

REPOSITORY = Path(__file__).resolve().parents[2]


def document(path: str, texts: list[str], heading: str = "") -> NewDocument:
    vectors = fake_embed(texts).astype(np.float32)
    chunks = [
        NewChunk(number, body, 1, 1, None, heading, len(body.split()), vector)
        for number, (body, vector) in enumerate(zip(texts, vectors, strict=True))
    ]
    return NewDocument(path, path, "text", None, "h", "h", 1, 1.0, chunks)


def test_every_migration_runs_on_postgresql_and_once(postgres_url: str) -> None:
    store = Store(postgres_url)
    assert store.applied_migrations() == sorted(name for name, _ in MIGRATIONS)
    assert Store(postgres_url).migrate() == []
    with store.engine.connect() as connection:
        indexes = set(
            connection.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")
            ).scalars()
        )
    assert "chunks_search" in indexes


def test_a_token_count_index_built_concurrently_by_hand_is_kept_by_0006(postgres_url: str) -> None:
    """An administrator may build 0006's index without blocking writes before upgrading
    (see `schema._index_token_counts`): the migration then keeps it instead of failing."""
    store = Store(postgres_url)
    store.replace_file("/a", [document("/a", ["alpha", "beta"])])
    with store.engine.begin() as connection:  # as a database from before 0006
        connection.execute(text("DROP INDEX chunks_token_count"))
        connection.execute(
            text("DELETE FROM schema_migrations WHERE name = '0006_chunks_token_count_index'")
        )
    by_hand = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with by_hand.connect() as connection:
        connection.execute(
            text("CREATE INDEX CONCURRENTLY chunks_token_count ON chunks (token_count)")
        )
    by_hand.dispose()
    assert Store(postgres_url).migrate() == []  # applied when the store was opened
    assert store.applied_migrations() == sorted(name for name, _ in MIGRATIONS)
    with store.engine.connect() as connection:
        valid = connection.execute(
            text(
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 'chunks_token_count'::regclass"
            )
        ).scalar_one()
    assert valid is True


def test_postgresql_only_migrations_do_not_hold_up_a_read_only_sqlite_home(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'a.db'}")
    assert pending_migrations(store.engine) == []
    assert set(store.applied_migrations()) >= POSTGRESQL_ONLY


def test_full_text_ranks_text_over_headings_and_stems(postgres_url: str) -> None:
    store = Store(postgres_url)
    _, in_text = store.replace_file("/a", [document("/a", ["the caches store keys"])])
    _, in_heading = store.replace_file("/b", [document("/b", ["other words"], heading="Cache")])
    store.replace_file("/c", [document("/c", ["bread and flour"])])
    hits = store.lexical_search("What does a cache store?", 10)
    assert [chunk_id for chunk_id, _ in hits] == [in_text[0], in_heading[0]]
    assert hits[0][1] > hits[1][1] > 0
    assert store.lexical_search("the of and", 5) == []


def test_a_rare_word_outranks_a_common_one(postgres_url: str) -> None:
    # ts_rank_cd, with no document frequencies, put the chunk that repeats the common word first.
    store = Store(postgres_url)
    common = [f"the protein {number} binds a protein and a protein receptor" for number in range(6)]
    _, with_common = store.replace_file("/common", [document("/common", common)])
    _, with_rare = store.replace_file("/rare", [document("/rare", ["telomerase was measured"])])
    hits = store.lexical_search("Does telomerase bind the protein?", 10)
    assert hits[0][0] == with_rare[0]
    assert {chunk_id for chunk_id, _ in hits[1:]} == set(with_common)


def test_lexical_scores_are_fts5_bm25_scores(tmp_path: Path, postgres_url: str) -> None:
    # Where PostgreSQL and FTS5 split and stem the words alike, and with no headings, the token
    # counts (`document` counts words) are FTS5's lengths too: the scores agree to rounding.
    texts = [
        "cache keys expire after one hour",
        "the cache keeps keys and values in memory, keys first",
        "values are written to disk when the memory is full",
        "an hour of reading about memory",
        "keys",
    ]
    results = []
    for url in (f"sqlite:///{tmp_path / 'a.db'}", postgres_url):
        store = Store(url)
        store.replace_file("/notes", [document("/notes", texts)])
        results.append(store.lexical_search("how long do cache keys stay in memory?", 10))
    fts5, postgresql = results
    assert [chunk_id for chunk_id, _ in postgresql] == [chunk_id for chunk_id, _ in fts5]
    assert [score for _, score in postgresql] == pytest.approx([score for _, score in fts5])


def test_vectors_are_committed_with_their_rows(postgres_url: str) -> None:
    store = Store(postgres_url)
    _, added = store.replace_file("/a", [document("/a", ["alpha beta", "gamma delta"])])
    # No index was ever opened or saved: another process sees the vectors at once.
    index = PgVectorIndex.open(Store(postgres_url), DIMENSIONS)
    assert index.ids().tolist() == added and index.differences(store)[0].size == 0
    hits = index.search(fake_embed(["gamma"])[0], 2)
    assert hits[0][0] == added[1] and hits[0][1] == pytest.approx(1 / np.sqrt(2), abs=1e-5)
    _, vectors = store.embeddings(added)
    stored = np.asarray(
        [[float(x) for x in row.strip("[]").split(",")] for row in _vector_texts(store)],
        dtype=np.float32,
    )
    assert np.array_equal(stored, vectors)  # the text form reads back exactly


def _vector_texts(store: Store) -> list[str]:
    with store.engine.connect() as connection:
        return list(
            connection.execute(text("SELECT vector::text FROM chunks ORDER BY id")).scalars()
        )


def test_hybrid_search_asks_for_more_than_hnsw_returns_by_default(postgres_url: str) -> None:
    store = Store(postgres_url)
    texts = [f"note {number} about topic{number % 7}" for number in range(120)]
    store.replace_file("/many", [document("/many", texts)])
    PgVectorIndex.open(store, DIMENSIONS)
    with store.engine.begin() as connection:  # new connections must answer from the HNSW index
        database = connection.execute(text("SELECT current_database()")).scalar_one()
        connection.execute(text(f'ALTER DATABASE "{database}" SET enable_seqscan = off'))
    index = PgVectorIndex(Store(postgres_url), DIMENSIONS)
    with index.store.engine.connect() as connection:
        plan = "\n".join(
            connection.execute(
                text(
                    "EXPLAIN SELECT id FROM chunks ORDER BY vector::vector(512) <=> "
                    "CAST(:query AS vector(512)) LIMIT 60"
                ),
                {"query": "[" + ",".join(["0.1"] * DIMENSIONS) + "]"},
            ).scalars()
        )
    assert "chunks_vector_hnsw_512" in plan
    assert len(index.search(fake_embed(["topic3"])[0], 60)) == 60  # pgvector's default: 40


def test_reconcile_and_rebuild_fill_missing_vectors(postgres_url: str) -> None:
    store = Store(postgres_url)
    _, added = store.replace_file("/a", [document("/a", ["alpha", "beta"])])
    index = PgVectorIndex.open(store, DIMENSIONS)
    index.remove([added[0]])
    assert index.differences(store)[0].tolist() == [added[0]]
    assert index.reconcile(store) == (1, 0) and len(index) == 2
    assert index.rebuild() == 2 and len(index) == 2


def test_a_home_of_another_dimension_is_refused(postgres_url: str) -> None:
    store = Store(postgres_url)
    store.replace_file("/a", [document("/a", ["alpha"])])
    with pytest.raises(IndexStateError, match="512-dimensional"):
        PgVectorIndex.open(store, 384)


class FakeEmbedder:
    """The bag-of-words fake with the parts of `Embedder` that ingest uses; `seconds` per text
    stands for a model's time, so that two ingests overlap."""

    dimension = DIMENSIONS
    chunk_limit = 256

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    def embed(self, texts: list[str]) -> np.ndarray:
        time.sleep(self.seconds * len(texts))
        return fake_embed(texts).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


def test_a_postgresql_home_searches_every_mode_and_reports_its_backend(
    tmp_path: Path, postgres_url: str
) -> None:
    from assistant.ingest.pipeline import ingest

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cache.md").write_text("# Caching\n\nThe key-value cache keeps keys and values.\n")
    (folder / "bread.md").write_text("# Baking\n\nSourdough bread needs flour, water and salt.\n")
    config = Config.load(environ={}, home=tmp_path / "home", database_url=postgres_url)
    home = Home(config, FakeEmbedder())  # type: ignore[arg-type]
    with home.writing():
        list(ingest(home, [folder]))
    assert home.in_database and not config.index_path.exists()
    for mode in ("dense", "lexical", "hybrid"):
        result = home.retriever().search("what does the key-value cache keep?", 2, mode)
        assert result.mode == mode and result.passages[0].source.endswith("cache.md")
    assert home.check().index.startswith("2 vectors in the database")
    assert home.rebuild_index() == 2
    assert backend(postgres_url) == "postgresql+pgvector"
    assert backend(f"sqlite:///{tmp_path / 'a.db'}") == "sqlite+faiss"
    home.close()


INGEST = textwrap.dedent(
    """
    import sys
    import time
    from pathlib import Path
    from assistant.config import Config
    from assistant.index.home import Home
    from assistant.ingest.pipeline import IngestSummary, ingest
    from tests.unit.test_index_postgres import FakeEmbedder

    url, home_folder, folder, ready, other = sys.argv[1:]
    config = Config.load(environ={}, home=Path(home_folder), database_url=url)
    home = Home(config, FakeEmbedder(seconds=0.02))
    Path(ready).touch()
    while not Path(other).exists():  # start together
        time.sleep(0.01)
    with home.writing():
        summary = list(ingest(home, [Path(folder)]))[-1]
    assert isinstance(summary, IngestSummary)
    print(len(summary.added))
    """
)


def test_two_processes_ingest_into_one_database_at_once(tmp_path: Path, postgres_url: str) -> None:
    folders = []
    for name in ("left", "right"):
        folder = tmp_path / name
        folder.mkdir()
        for number in range(40):
            (folder / f"{name}{number}.md").write_text(
                f"# {name} {number}\n\nNote {number} of the {name} folder: word{name}{number}.\n"
                + "".join(f"\nParagraph {line} about {name} things.\n" for line in range(20))
            )
        folders.append(folder)
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                INGEST,
                postgres_url,
                str(tmp_path / "home"),
                str(folder),
                str(tmp_path / f"{folder.name}.ready"),
                str(tmp_path / f"{other.name}.ready"),
            ],
            env=environment,
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for folder, other in zip(folders, reversed(folders), strict=True)
    ]  # one home folder for both, as two workers on one machine would share it
    for run in runs:
        output, errors = run.communicate(timeout=300)
        assert run.returncode == 0, errors
        assert output.strip() == "40"

    store = Store(postgres_url)
    with store.engine.connect() as connection:
        duplicates = connection.execute(
            text("SELECT count(*) - count(DISTINCT key) FROM documents")
        ).scalar_one()
        orphans = connection.execute(
            text(
                "SELECT count(*) FROM chunks c LEFT JOIN documents d ON d.id = c.document_id "
                "WHERE d.id IS NULL"
            )
        ).scalar_one()
        miscounted = connection.execute(
            text(
                "SELECT count(*) FROM documents d WHERE d.chunk_count <> "
                "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id)"
            )
        ).scalar_one()
        spans = connection.execute(
            text(
                "SELECT min(ingested_at), max(ingested_at) FROM documents "
                "GROUP BY path LIKE '%/left/%' ORDER BY 1"
            )
        ).all()
    assert (duplicates, orphans, miscounted) == (0, 0, 0)
    assert spans[1][0] < spans[0][1], spans  # the two ingests really ran at the same time
    assert store.counts()["documents"] == 80
    config = Config.load(environ={}, home=tmp_path / "home", database_url=postgres_url)
    home = Home(config, FakeEmbedder())  # type: ignore[arg-type]
    assert (
        home.index.differences(store)[0].size == 0 and len(home.index) == store.counts()["chunks"]
    )
    for name, number in (("left", 7), ("right", 31)):
        query = f"note {number} of the {name} folder: word{name}{number}"
        for mode in ("dense", "lexical", "hybrid"):
            passages = home.retriever().search(query, 1, mode).passages
            assert passages[0].source.endswith(f"{name}{number}.md"), (query, mode)
    home.close()


def test_errors_name_the_cause_and_never_the_password(postgres_server: object) -> None:
    url = "postgresql+psycopg://someone:s3cret-pass@127.0.0.1:1/nothing?connect_timeout=3"
    assert "s3cret" not in display_url(url) and "***" in display_url(url)
    with pytest.raises(StoreError, match="cannot reach the PostgreSQL server") as caught:
        Store(url)
    assert "s3cret" not in str(caught.value)

    socket = postgres_server.socket_folder  # type: ignore[attr-defined]
    missing = f"postgresql+psycopg://postgres:s3cret-pass@/no_such_database?host={socket}"
    with pytest.raises(StoreError, match="does not exist") as caught:
        Store(missing)
    assert "s3cret" not in str(caught.value)


def test_wrong_credentials_give_one_clear_error_without_the_password(
    tmp_path: Path, postgres_server: Server
) -> None:
    from typer.testing import CliRunner

    from assistant.cli.app import app

    postgres_server.password_role("right-pass")
    url = postgres_server.url().replace("postgres@", f"{PASSWORD_ROLE}:{{}}@")
    engine = create_engine(url.format("right-pass"))
    with engine.connect() as connection:  # the role can log in: only the password will be wrong
        assert connection.execute(text("SELECT current_user")).scalar_one() == PASSWORD_ROLE
    engine.dispose()
    with pytest.raises(StoreError, match="refused the credentials") as caught:
        Store(url.format("s3cret-pass"))
    assert "s3cret" not in str(caught.value) and f"{PASSWORD_ROLE}:***@" in str(caught.value)

    environment = {
        "ASSISTANT_HOME": str(tmp_path / "home"),
        "ASSISTANT_DATABASE_URL": url.format("s3cret-pass"),
    }
    result = CliRunner().invoke(app, ["info"], env=environment)
    assert result.exit_code == 1 and "s3cret" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "refused the credentials" in lines[0], result.output


def test_a_database_without_pgvector_says_how_to_enable_it() -> None:
    from types import SimpleNamespace

    from assistant.index import postgres

    url = "postgresql+psycopg://team:s3cret-pass@db.example/notes"
    error = Exception('extension "vector" is not available')
    context = SimpleNamespace(original_exception=error, is_disconnect=False)
    with pytest.raises(StoreError, match="CREATE EXTENSION vector;") as caught:
        postgres.translator(display_url(url))(context)
    assert "s3cret" not in str(caught.value) and "team:***@db.example" in str(caught.value)


def test_info_shows_the_backend_and_masks_the_password(tmp_path: Path, postgres_url: str) -> None:
    import json

    from typer.testing import CliRunner

    from assistant.cli.app import app

    url = postgres_url.replace("postgres@", "postgres:s3cret-pass@")  # trust: any password
    environment = {"ASSISTANT_HOME": str(tmp_path / "home"), "ASSISTANT_DATABASE_URL": url}
    result = CliRunner().invoke(app, ["info", "--json"], env=environment)
    assert result.exit_code == 0, result.output
    details = json.loads(result.output)
    assert details["backend"] == "postgresql+pgvector" and details["lexical_search"] is True
    assert "s3cret" not in result.output and "postgres:***@" in details["database"]
    assert details["index_state"] == "pgvector in the database, none yet"
