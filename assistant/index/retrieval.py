"""Find the passages that answer a query: dense, lexical (BM25), or both fused by RRF.

Dense search compares the query's embedding with every chunk's (FAISS, or pgvector on
PostgreSQL); lexical search ranks chunks by BM25 (SQLite FTS5's, or the same in PostgreSQL's SQL).
Hybrid runs both over `candidates` results each and fuses the
two rankings by reciprocal rank fusion (Cormack et al., 2009): score = sum 1 / (rrf_k + rank).
A `Scope` limits both rankers, inside their searches, to the documents under some paths.
Which mode is the default is decided by `assistant eval retrieval` on SciFact (see evals/README).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

from assistant.config import RetrievalMode
from assistant.embed.embedder import Embedder
from assistant.errors import ConfigError
from assistant.index.passage import Passage
from assistant.index.scope import Scope
from assistant.index.store import Store
from assistant.index.vectors import Vectors

MODES: tuple[RetrievalMode, ...] = get_args(RetrievalMode)


@dataclass(frozen=True)
class SearchResult:
    passages: list[Passage]
    mode: str
    milliseconds: float
    scope: Scope | None = None  # None: every document was searched


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], rrf_k: int = 60
) -> list[tuple[int, float]]:
    """Fuse ranked id lists: each id scores sum(1 / (rrf_k + rank)), rank 1-based; best first."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (rrf_k + rank)
    return sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))


class Retriever:
    """Searches one store + index with one embedder."""

    def __init__(
        self,
        store: Store,
        index: Vectors,
        embedder: Embedder,
        *,
        mode: str = "hybrid",
        candidates: int = 50,
        rrf_k: int = 60,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"retrieval mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.store = store
        self.index = index
        self.embedder = embedder
        self.mode = mode if store.has_lexical or mode == "dense" else "dense"
        self.candidates = candidates
        self.rrf_k = rrf_k

    def search(
        self, query: str, k: int, mode: str | None = None, scope: Scope | None = None
    ) -> SearchResult:
        """The top `k` passages for `query`, best first; with a `scope`, the top `k` of the
        documents in it (fewer only when the scope holds fewer matching chunks)."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ConfigError(f"retrieval mode must be one of {', '.join(MODES)}, not {mode!r}")
        started = time.perf_counter()
        pool = max(k, self.candidates)
        dense: list[tuple[int, float]] = []
        lexical: list[tuple[int, float]] = []
        # Resolved at each search: documents come and go (another process may be ingesting).
        within = self.store.chunk_ids(scope) if scope is not None else None
        searchable = within is None or len(within) > 0
        if searchable and mode in ("dense", "hybrid"):
            dense = self.index.search(self.embedder.embed_query(query), pool, within)
        if searchable and mode in ("lexical", "hybrid"):
            lexical = self.store.lexical_search(query, pool, scope)
        if mode == "dense":
            ranked = dense
        elif mode == "lexical":
            ranked = lexical
        else:
            ranked = reciprocal_rank_fusion(
                [[i for i, _ in dense], [i for i, _ in lexical]], self.rrf_k
            )
        ranked = ranked[:k]
        rows = self.store.chunks_by_id([chunk_id for chunk_id, _ in ranked])
        passages: list[Passage] = []
        for chunk_id, score in ranked:
            row = rows.get(chunk_id)
            if row is None:  # the index is ahead of the store; skip (reconciled at next open)
                continue
            passages.append(
                Passage(
                    chunk_id=row.id,
                    text=row.text,
                    source=row.source,
                    start_line=row.start_line,
                    end_line=row.end_line,
                    page=row.page,
                    heading=row.heading,
                    score=score,
                    rank=len(passages) + 1,
                )
            )
        milliseconds = (time.perf_counter() - started) * 1000
        return SearchResult(passages, mode, milliseconds, scope)


def rank_documents(passages: Sequence[Passage]) -> list[str]:
    """Document keys in the order their best passage appears (for document-level evals)."""
    seen: dict[str, None] = {}
    for passage in passages:
        seen.setdefault(passage.source, None)
    return list(seen)
