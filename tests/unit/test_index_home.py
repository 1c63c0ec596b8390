"""The home folder: `replace`, `forget` and `touch` keep the database and the vector index in
step (and survive a crash between them); through the CLI, a read-only home can be read and a file
is not a home."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from assistant.cli.app import app
from assistant.config import Config
from assistant.errors import IndexStateError
from assistant.index.home import EMBEDDING_DIMENSION_KEY, EMBEDDING_MODEL_KEY, Home
from assistant.index.store import NewChunk, NewDocument, Store
from assistant.index.vectors import VectorIndex
from tests.fakes import DIMENSIONS, fake_embed


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cache.md").write_text("# Cache\n\nThe KV cache stores keys and values.\n")
    return folder


def without_write_privilege(folder: Path) -> list[str]:
    """A command prefix under which file modes stop writes, or skip saying why there is none.

    Root writes through any mode; dropping its capability to override file modes (setpriv)
    makes a read-only folder read-only for it too.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: file modes would not stop writes")
    prefix = [setpriv, "--bounding-set=-dac_override,-dac_read_search"]
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", f"open({str(folder / 'probe')!r}, 'w')"],
        capture_output=True,
    )
    if probe.returncode == 0:
        (folder / "probe").unlink()
        pytest.skip("root keeps writing through file modes here (setpriv could not drop that)")
    return prefix


@pytest.fixture
def read_only_home(tmp_path: Path, docs: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    result = CliRunner().invoke(app, ["ingest", str(docs)], env={"ASSISTANT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    entries = [path for path in home.iterdir() if path.is_file()]
    for path in entries:
        path.chmod(0o444)
    home.chmod(0o555)
    try:
        yield home
    finally:
        home.chmod(0o755)
        for path in entries:
            path.chmod(0o644)


def test_a_read_only_home_can_be_read_and_says_it_cannot_be_written(
    read_only_home: Path, docs: Path
) -> None:
    prefix = without_write_privilege(read_only_home)
    environment = {**os.environ, "ASSISTANT_HOME": str(read_only_home), "COLUMNS": "200"}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = [*prefix, sys.executable, "-m", "assistant", *arguments]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)

    before = sorted(path.name for path in read_only_home.iterdir())
    result = run("docs", "--json")
    assert result.returncode == 0, result.stderr
    assert [row["title"] for row in json.loads(result.stdout)] == ["Cache"]

    result = run("info", "--json")
    assert result.returncode == 0, result.stderr
    details = json.loads(result.stdout)
    assert details["writable"] is False and details["chunks"] == 1

    result = run("search", "what does the cache store", "--json", "-k", "1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["passages"][0]["source"].endswith("cache.md")

    result = run("sessions", "--json")
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stderr

    for command in (["ingest", str(docs)], ["forget", str(docs)]):
        result = run(*command)
        assert result.returncode == 1, result.stderr
        assert "is not writable" in result.stderr and "Traceback" not in result.stderr
    assert sorted(path.name for path in read_only_home.iterdir()) == before


def test_a_home_that_is_a_file_is_one_clear_error(tmp_path: Path, docs: Path) -> None:
    file = tmp_path / "home.txt"
    file.write_text("not a folder\n")
    runner = CliRunner()
    for command in (["ingest", str(docs)], ["docs"], ["info"], ["ask", "What is cached?"]):
        result = runner.invoke(app, [*command, "--home", str(file)], env={"COLUMNS": "200"})
        assert result.exit_code == 1, (command, result.output)
        assert "is a file, not a folder" in result.output and "Traceback" not in result.output


# --- replace, forget and touch: the database and the vector index together --------------------


@pytest.fixture
def small_home(config: Config, store_url: str) -> Iterator[Home]:
    """A home recorded as built by a 512-dimensional model, fed vectors from the bag-of-words
    fake: no model is loaded. Once over SQLite + FAISS, once over PostgreSQL + pgvector."""
    yield from _small_home(dataclasses.replace(config, database_url=store_url))


@pytest.fixture
def faiss_home(config: Config) -> Iterator[Home]:
    """`small_home` over SQLite, for what only a FAISS file can show (a save it has not made)."""
    yield from _small_home(config)


def _small_home(config: Config) -> Iterator[Home]:
    store = Store(config.database)
    store.set_setting(EMBEDDING_MODEL_KEY, config.embedding_model)
    store.set_setting(EMBEDDING_DIMENSION_KEY, str(DIMENSIONS))
    store.close()
    assistant_home = Home(config)
    yield assistant_home
    assistant_home.close()


def document(path: str, texts: list[str], key: str | None = None) -> NewDocument:
    vectors = fake_embed(texts).astype(np.float32)
    chunks = [
        NewChunk(number, text, number + 1, number + 1, None, "", len(text.split()), vector)
        for number, (text, vector) in enumerate(zip(texts, vectors, strict=True))
    ]
    digest = str(hash(tuple(texts)))
    return NewDocument(key or path, path, "text", None, digest, digest, 1, 1.0, chunks)


def search(assistant_home: Home, query: str, k: int = 5) -> list[str]:
    """The texts of the `k` chunks nearest to `query` in the vector index, best first."""
    hits = assistant_home.index.search(fake_embed([query])[0], k)
    rows = assistant_home.store.chunks_by_id([chunk_id for chunk_id, _ in hits])
    return [rows[chunk_id].text for chunk_id, _ in hits]


def in_step(assistant_home: Home) -> bool:
    ids = assistant_home.index.ids()
    return len(set(ids.tolist())) == len(ids) and sorted(ids.tolist()) == sorted(
        assistant_home.store.chunk_ids().tolist()
    )


def test_replace_writes_rows_and_vectors_together(small_home: Home) -> None:
    removed, added = small_home.replace(
        "/d/cache.md", [document("/d/cache.md", ["the cache stores keys", "values too"])]
    )
    small_home.replace("/d/rope.md", [document("/d/rope.md", ["rotary embeddings rotate"])])
    assert removed == [] and len(added) == 2
    assert small_home.store.counts()["chunks"] == len(small_home.index) == 3 and in_step(small_home)
    assert search(small_home, "what does the cache store", 1) == ["the cache stores keys"]

    removed, added_again = small_home.replace(
        "/d/cache.md", [document("/d/cache.md", ["the cache holds pages"])]
    )
    assert sorted(removed) == sorted(added) and not set(added_again) & set(added)
    assert small_home.store.counts()["chunks"] == len(small_home.index) == 2 and in_step(small_home)
    assert search(small_home, "cache", 2)[0] == "the cache holds pages"
    assert "the cache stores keys" not in search(small_home, "cache stores keys values")


def test_replace_keeps_the_rows_named_and_drops_the_others(small_home: Home) -> None:
    rows = [
        document("/c.jsonl", [f"row {n} about topic{n}"], key=f"/c.jsonl#{n}") for n in range(3)
    ]
    _, first = small_home.replace("/c.jsonl", rows)
    changed = document("/c.jsonl", ["row one rewritten"], key="/c.jsonl#1")
    removed, added = small_home.replace("/c.jsonl", [changed], keep_keys=["/c.jsonl#0"])
    assert sorted(removed) == sorted([first[1], first[2]]) and len(added) == 1
    assert sorted(row.key for row in small_home.store.documents()) == ["/c.jsonl#0", "/c.jsonl#1"]
    assert in_step(small_home) and search(small_home, "topic2", 1) != ["row 2 about topic2"]


def test_forget_removes_rows_and_vectors_of_those_files_only(small_home: Home) -> None:
    _, cache = small_home.replace("/d/cache.md", [document("/d/cache.md", ["the cache stores"])])
    small_home.replace("/d/rope.md", [document("/d/rope.md", ["rotary embeddings rotate"])])
    assert small_home.forget([]) == []
    assert small_home.forget(["/d/cache.md", "/d/never-ingested.md"]) == cache
    assert small_home.store.counts() == {"files": 1, "documents": 1, "chunks": 1}
    assert len(small_home.index) == 1 and in_step(small_home)
    assert search(small_home, "the cache stores") == ["rotary embeddings rotate"]
    assert small_home.store.lexical_search("cache", 5) == []


def test_touch_changes_the_rows_stat_and_no_vector(small_home: Home) -> None:
    small_home.replace("/d/a.md", [document("/d/a.md", ["alpha"])])
    small_home.save_index()
    before = small_home.index.ids().tolist()
    small_home.touch("/d/a.md", 42, 7.5, "new-hash")
    (row,) = small_home.store.documents()
    assert (row.size, row.mtime, row.file_hash) == (42, 7.5, "new-hash")
    assert small_home.index.ids().tolist() == before and not small_home.index.dirty


def test_a_wrong_vector_is_refused_before_anything_is_written(small_home: Home) -> None:
    small_home.replace("/d/a.md", [document("/d/a.md", ["alpha"])])
    good = document("/d/a.md", ["beta"])
    short = dataclasses.replace(good.chunks[0], embedding=np.zeros(3, dtype=np.float32))
    with pytest.raises(IndexStateError, match="shape"):
        small_home.replace("/d/a.md", [dataclasses.replace(good, chunks=[short])])
    assert search(small_home, "alpha beta") == ["alpha"] and in_step(small_home)


def test_a_crash_before_the_index_save_is_made_good_by_the_next_open(faiss_home: Home) -> None:
    faiss_home.replace("/d/a.md", [document("/d/a.md", ["alpha", "beta"])])
    faiss_home.save_index()
    faiss_home.replace("/d/b.md", [document("/d/b.md", ["gamma"])])
    faiss_home.forget(["/d/a.md"])
    # Killed here: both changes are committed, the index file still holds "alpha" and "beta".
    on_disk = VectorIndex.open(faiss_home.config.index_path, DIMENSIONS)
    assert len(on_disk) == 2

    reopened = Home(faiss_home.config)
    assert in_step(reopened) and search(reopened, "gamma", 1) == ["gamma"]
    # The index is opened (and reconciled) before `replace` commits, so nothing is added twice.
    later = Home(faiss_home.config)
    later.replace("/d/c.md", [document("/d/c.md", ["delta"])])
    assert len(later.index) == later.store.counts()["chunks"] == 2 and in_step(later)
    later.close()
    reopened.close()


def test_drop_index_deletes_it_and_the_next_use_rebuilds_it(faiss_home: Home) -> None:
    faiss_home.replace("/d/a.md", [document("/d/a.md", ["alpha", "beta"])])
    faiss_home.save_index()
    faiss_home.drop_index()
    assert not faiss_home.config.index_path.exists()
    assert len(faiss_home.index) == 2 and in_step(faiss_home)
    assert faiss_home.rebuild_index() == 2 and faiss_home.config.index_path.exists()
