"""A damaged database, through the CLI: one clear error, `info` says so, `repair` rebuilds it;
and the rebuilt home's vector index is built from the new database, not left from the old one."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assistant.chat.sessions import Sessions
from assistant.cli.app import app
from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.index.home import Home
from assistant.index.store import Store
from assistant.ingest.pipeline import ingest
from assistant.ingest.repair import RepairReport, repair

DAMAGED = "is damaged"


@pytest.fixture
def run(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    environment = {"ASSISTANT_HOME": str(tmp_path / "home"), "COLUMNS": "200"}

    def invoke(*arguments: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(arguments), env=environment)

    return invoke


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cache.md").write_text("# Cache\n\nThe KV cache stores keys and values.\n")
    (folder / "rope.md").write_text("# RoPE\n\nRotary embeddings rotate query and key pairs.\n")
    (folder / "bpe.txt").write_text("Byte-pair encoding merges frequent symbol pairs.\n")
    return folder


def database_of(tmp_path: Path) -> Path:
    return tmp_path / "home" / "assistant.db"


def damage_inner_page(database: Path) -> None:
    """Write random bytes over the fourth page (page 1, the header and schema, stays intact)."""
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page is in the file
        page_size = connection.execute("PRAGMA page_size").fetchone()[0]
    assert database.stat().st_size >= page_size * 5, "too few pages to damage an inner one"
    with database.open("r+b") as stream:
        stream.seek(page_size * 3)
        stream.write(random.Random(17).randbytes(page_size))


def test_a_damaged_database_is_one_clear_error_and_repair_rebuilds_it(  # type: ignore[no-untyped-def]
    run, docs: Path, tmp_path: Path
) -> None:
    assert run("ingest", str(docs)).exit_code == 0
    store = Store(Config.load(environ={}, home=tmp_path / "home").database)
    Sessions(store).open("notes")  # a chat session: not in any file, carried over by repair
    store.close()
    damage_inner_page(database_of(tmp_path))

    for command in (["docs"], ["search", "what does the cache store"], ["ingest", str(docs)]):
        result = run(*command)
        assert result.exit_code == 1, (command, result.output)
        assert DAMAGED in result.output and "assistant repair" in result.output, result.output
        assert "Traceback" not in result.output and "sqlalchemy" not in result.output

    result = run("info")
    assert result.exit_code == 1
    assert "problem:" in result.output and DAMAGED in result.output
    details = json.loads(run("info", "--json").stdout)
    assert details["database_check"] == "damaged" and "assistant repair" in details["problems"][0]

    (docs / "bpe.txt").unlink()  # its text lived only in the database: repair must say so
    result = run("repair")
    assert result.exit_code == 0, result.output
    moved = list((tmp_path / "home").glob("assistant.db.damaged-*"))
    assert [path.name for path in moved if not path.name.endswith(("-wal", "-shm"))]
    assert "kept as" in result.output and "added 2" in result.output
    assert f"lost: {docs / 'bpe.txt'}: the file is gone" in result.output
    assert "kept 1 chat session" in result.output

    result = run("info", "--json")
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    assert details["database_check"] == "ok" and details["problems"] == []
    assert details["documents"] == 2 and details["index_state"].endswith(
        "in step with the database"
    )
    assert sorted(d["title"] for d in json.loads(run("docs", "--json").stdout)) == ["Cache", "RoPE"]
    hits = json.loads(run("search", "what does the cache store", "--json", "-k", "1").stdout)[
        "passages"
    ]
    assert hits[0]["source"].endswith("cache.md")
    assert [s["name"] for s in json.loads(run("sessions", "--json").stdout)] == ["notes"]


def test_a_database_whose_header_is_gone_is_rebuilt_from_the_folders_given(  # type: ignore[no-untyped-def]
    run, docs: Path, tmp_path: Path
) -> None:
    assert run("ingest", str(docs)).exit_code == 0
    database = database_of(tmp_path)
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with database.open("r+b") as stream:
        stream.write(b"not a database any more" * 8)

    result = run("docs")
    assert result.exit_code == 1 and DAMAGED in result.output and "Traceback" not in result.output

    result = run("repair", str(docs))
    assert result.exit_code == 0, result.output
    assert "added 3" in result.output and "could not be named" in result.output
    assert len(json.loads(run("docs", "--json").stdout)) == 3


def test_repair_leaves_a_healthy_database_alone(run, docs: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("ingest", str(docs / "cache.md")).exit_code == 0
    result = run("repair")
    assert result.exit_code == 0 and "nothing to repair" in result.output
    assert not list((tmp_path / "home").glob("*.damaged-*"))

    result = run("info", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["database_check"] == "ok"


def test_the_rebuilt_index_holds_the_new_databases_vectors(
    config: Config, embedder: Embedder, docs: Path
) -> None:
    first = Home(config, embedder)
    list(ingest(first, [docs]))
    first.close()
    (docs / "bpe.txt").unlink()  # the new database numbers its chunks differently: the old
    # index's ids would name other chunks in it

    rebuilding = Home(config, embedder)
    with rebuilding.writing():
        report = list(repair(rebuilding, force=True))[-1]
    assert isinstance(report, RepairReport) and report.moved_to is not None

    repaired = Home(config, embedder)
    ids, stored = repaired.store.embeddings(repaired.store.chunk_ids().tolist())
    assert sorted(repaired.index.ids().tolist()) == sorted(ids.tolist())
    indexed = [repaired.index.index.reconstruct(int(chunk_id)) for chunk_id in ids]
    assert all((vector == row).all() for vector, row in zip(indexed, stored, strict=True))
    repaired.close()


def test_on_postgresql_repair_writes_the_vectors_chunks_lack(
    config: Config, embedder: Embedder, docs: Path, postgres_url: str
) -> None:
    """A PostgreSQL store has no file to rebuild: `repair` gives the chunks without a vector (an
    interrupted `reindex`) theirs again, and otherwise says there is nothing to repair."""
    url = postgres_url.replace("postgres@", "postgres:s3cret-pass@")  # trust: any password
    home = Home(config.replace(database_url=url), embedder)
    list(ingest(home, [docs]))
    home.index.remove(home.store.chunk_ids().tolist())  # as a `reindex` killed half-way leaves it
    question = "what does the KV cache store?"
    assert home.retriever().search(question, 1, "dense").passages == []
    runner = CliRunner()
    environment = {
        "ASSISTANT_HOME": str(config.home),
        "ASSISTANT_DATABASE_URL": url,
        "COLUMNS": "200",
    }

    def run(*arguments: str):  # type: ignore[no-untyped-def]
        result = runner.invoke(app, list(arguments), env=environment)
        assert "s3cret-pass" not in result.output and "Traceback" not in result.output
        return result

    assert "3 chunks lack one (`assistant repair` writes them)" in run("info").output
    result = run("repair")
    assert result.exit_code == 0, result.output
    assert "found: 3 chunks have no vector" in result.output
    assert "wrote the vectors of 3 chunk(s)" in result.output
    assert not list(config.home.glob("*.damaged-*"))
    hits = home.retriever().search(question, 1, "dense").passages
    assert hits[0].source.endswith("cache.md")  # found by its vector again

    result = run("repair")
    assert (
        result.exit_code == 0 and "every chunk has its vector: nothing to repair" in result.output
    )
    result = run("repair", "--force")
    assert result.exit_code == 0 and "wrote the vectors of 3 chunk(s)" in result.output
    result = run("repair", str(docs))
    assert result.exit_code == 1 and "use `assistant ingest PATH...`" in result.output
    home.close()
