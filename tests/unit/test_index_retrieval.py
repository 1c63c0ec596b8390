from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.errors import InputError
from assistant.index.home import Home
from assistant.index.passage import Passage
from assistant.index.pgvectors import PgVectorIndex
from assistant.index.retrieval import Retriever, rank_documents, reciprocal_rank_fusion
from assistant.index.scope import resolve_scope
from assistant.ingest.pipeline import IngestSummary, ingest


def test_reciprocal_rank_fusion_by_hand() -> None:
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], rrf_k=60)
    scores = dict(fused)
    assert scores[1] == pytest.approx(1 / 61 + 1 / 62)
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert scores[2] == pytest.approx(1 / 62)
    assert [item for item, _ in fused] == [1, 3, 2]


def test_rank_documents_keeps_first_appearance() -> None:
    def passage(source: str) -> Passage:
        return Passage(0, "t", source, 1, 1, None, "", 1.0)

    assert rank_documents([passage("b"), passage("a"), passage("b")]) == ["b", "a"]


def _ingest(home: Home, folder: Path) -> IngestSummary:
    events = list(ingest(home, [folder]))
    summary = events[-1]
    assert isinstance(summary, IngestSummary)
    return summary


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_every_mode_finds_the_passage(any_home: Home, tmp_path: Path, mode: str) -> None:
    home = any_home
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "cache.md").write_text(
        "# Caching\n\nThe key-value cache keeps attention keys and values of past tokens.\n"
    )
    (folder / "bread.md").write_text("# Baking\n\nSourdough bread needs flour, water and salt.\n")
    _ingest(home, folder)
    result = home.retriever().search("what does the key-value cache keep?", 2, mode)
    assert result.mode == mode
    assert result.passages[0].source.endswith("cache.md")
    assert result.passages[0].heading == "Caching"
    assert result.passages[0].start_line == 3
    assert [p.rank for p in result.passages] == list(range(1, len(result.passages) + 1))


def _scoped_corpus(folder: Path) -> None:
    """Ten files about the KV cache under main/, three about bread under side/ (they share only
    the word "cache" with the question, so every ranker puts them last), and side.md beside the
    side/ folder (its path starts with ".../side" but it is not in the folder)."""
    for number in range(10):
        (folder / "main").mkdir(parents=True, exist_ok=True)
        (folder / "main" / f"cache-{number}.md").write_text(
            f"# Cache {number}\n\nThe key-value cache stores the attention keys and values of "
            f"past tokens, part {number}.\n"
        )
    (folder / "side").mkdir()
    for number, grain in enumerate(["rye", "spelt", "wheat"]):
        (folder / "side" / f"bread-{number}.md").write_text(
            f"# Bread {number}\n\nSourdough {grain} bread needs flour, water and salt; "
            "bakers keep a cache of starter in the cellar.\n"
        )
    (folder / "side.md").write_text("# Side\n\nA cache of keys and values, stored on the side.\n")


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_a_scope_is_applied_inside_retrieval(any_home: Home, tmp_path: Path, mode: str) -> None:
    home = any_home
    folder = tmp_path / "docs"
    _scoped_corpus(folder)
    _ingest(home, folder)
    # Candidates = k: the unscoped search ranks only the top 3, none of them from side/, so a
    # filter applied to its results afterwards would return nothing.
    retriever = Retriever(home.store, home.index, home.embedder, mode=mode, candidates=3)
    question = "what does the key-value cache store?"
    unscoped = retriever.search(question, 3)
    assert all("/main/" in p.source for p in unscoped.passages) and unscoped.scope is None

    scope = resolve_scope([folder / "side"], home.store)
    scoped = retriever.search(question, 3, scope=scope)
    assert scoped.scope == scope and scope is not None
    assert sorted(Path(p.source).name for p in scoped.passages) == [
        "bread-0.md",
        "bread-1.md",
        "bread-2.md",
    ]
    assert [p.rank for p in scoped.passages] == [1, 2, 3]

    # A file is a scope too; two paths are searched together.
    one = resolve_scope([folder / "side.md"], home.store)
    assert [Path(p.source).name for p in retriever.search(question, 3, scope=one).passages] == [
        "side.md"
    ]
    both = resolve_scope([folder / "side.md", folder / "main" / "cache-7.md"], home.store)
    names = {Path(p.source).name for p in retriever.search(question, 5, scope=both).passages}
    assert names == {"side.md", "cache-7.md"}


def test_pgvector_answers_a_large_scope_through_hnsw(
    config: Config, embedder: Embedder, postgres_url: str, tmp_path: Path
) -> None:
    """Above `exact_limit` chunks a scope goes through the HNSW index with a WHERE clause (and
    exactly, should HNSW come back short): either way, k passages, all in scope."""
    home = Home(dataclasses.replace(config, database_url=postgres_url), embedder)
    try:
        folder = tmp_path / "docs"
        _scoped_corpus(folder)
        _ingest(home, folder)
        index = home.index
        assert isinstance(index, PgVectorIndex)
        scope = resolve_scope([folder / "side"], home.store)
        assert scope is not None
        within = home.store.chunk_ids(scope)
        query = embedder.embed_query("what does the key-value cache store?")
        exact = index.search(query, 3, within)
        index.exact_limit = 0
        approximate = index.search(query, 3, within)
        assert len(exact) == 3 and {i for i, _ in approximate} == {i for i, _ in exact}
        assert set(within.tolist()) == {i for i, _ in exact}
    finally:
        home.close()


def test_a_scope_names_what_is_not_ingested(any_home: Home, tmp_path: Path) -> None:
    home = any_home  # LIKE is case-insensitive on SQLite only: `Scope.sql` must not rely on it
    folder = tmp_path / "docs"
    _scoped_corpus(folder)
    _ingest(home, folder)
    assert resolve_scope([], home.store) is None
    with pytest.raises(InputError, match=r"nothing ingested under .*/docs/Side;"):
        resolve_scope([folder / "Side"], home.store)  # paths are case-sensitive
    with pytest.raises(InputError) as raised:
        resolve_scope([folder / "side", folder / "nowhere", folder / "main" / "cache"], home.store)
    assert str(raised.value).startswith(f"nothing ingested under {folder / 'nowhere'}, ")
    assert str(raised.value).count(str(folder)) == 2
    # A folder path with a trailing slash, `~` and `..` resolve as `forget` resolves them.
    scope = resolve_scope([f"{folder}/main/../side/"], home.store)
    assert scope is not None and scope.paths == (str(folder / "side"),)
    assert len(home.store.chunk_ids(scope)) == 3
