from __future__ import annotations

from pathlib import Path

import pytest

from assistant.index.home import Home
from assistant.index.passage import Passage
from assistant.index.retrieval import rank_documents, reciprocal_rank_fusion
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
def test_every_mode_finds_the_passage(home: Home, tmp_path: Path, mode: str) -> None:
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
