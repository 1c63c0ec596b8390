"""The retrieval suite: BEIR-format corpus, queries and qrels; nDCG, recall and MRR per mode.

The corpus is ingested through the same path as `assistant ingest` (a JSONL row is one document,
keyed `corpus.jsonl#<_id>`); each query is searched in every mode asked for, chunk results are
turned into a document ranking (a document ranks where its best chunk ranks), and the standard
metrics are computed against the qrels. This is the measurement that picks the default mode.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from assistant.errors import EvalDataError
from assistant.evals.datasets import load_beir_qrels, load_beir_queries
from assistant.evals.metrics import mean, mrr_at_k, ndcg_at_k, recall_at_k
from assistant.evals.report import EvalProgress, EvalReport
from assistant.index.home import Home
from assistant.index.retrieval import MODES, rank_documents
from assistant.ingest.pipeline import IngestProgress, IngestSummary, ingest

CHUNKS_PER_QUERY = 100  # chunk candidates gathered per query before ranking documents


def run_retrieval_eval(
    home: Home,
    corpus: Path,
    queries_path: Path,
    qrels_path: Path,
    modes: Sequence[str] = MODES,
    k: int = 10,
    limit: int | None = None,
) -> Iterator[EvalProgress | EvalReport]:
    """Ingest `corpus` into `home`, search every judged query, and report metrics per mode."""
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    started = time.perf_counter()
    queries = load_beir_queries(queries_path)
    qrels = load_beir_qrels(qrels_path)
    judged = [query_id for query_id in queries if qrels.get(query_id)]
    if not judged:
        raise EvalDataError(f"{qrels_path}: no query in {queries_path} has a relevance judgement")
    if limit is not None:
        judged = judged[:limit]

    for event in ingest(home, [corpus]):
        if isinstance(event, IngestProgress):
            yield EvalProgress(event.chunks_done, 0, "ingesting corpus")
        elif isinstance(event, IngestSummary) and event.skipped:
            reasons = "; ".join(f"{s.path}: {s.reason}" for s in event.skipped[:3])
            raise EvalDataError(f"the corpus could not be ingested: {reasons}")
    retriever = home.retriever()
    prefix = f"{corpus.resolve()}#"

    per_mode: dict[str, dict[str, list[float]]] = {
        mode: {"ndcg@10": [], "recall@1": [], "recall@5": [], "recall@10": [], "mrr@10": []}
        for mode in modes
    }
    records: list[dict[str, object]] = []
    total = len(judged) * len(modes)
    done = 0
    for query_id in judged:
        relevance = qrels[query_id]
        record: dict[str, object] = {"query_id": query_id, "query": queries[query_id]}
        for mode in modes:
            result = retriever.search(queries[query_id], CHUNKS_PER_QUERY, mode)
            ranking = [key.removeprefix(prefix) for key in rank_documents(result.passages)]
            scores = per_mode[mode]
            scores["ndcg@10"].append(ndcg_at_k(ranking, relevance, 10))
            scores["recall@1"].append(recall_at_k(ranking, relevance, 1))
            scores["recall@5"].append(recall_at_k(ranking, relevance, 5))
            scores["recall@10"].append(recall_at_k(ranking, relevance, 10))
            scores["mrr@10"].append(mrr_at_k(ranking, relevance, 10))
            record[mode] = {
                "top": ranking[:k],
                "ndcg@10": scores["ndcg@10"][-1],
                "ms": round(result.milliseconds, 2),
            }
            done += 1
            yield EvalProgress(done, total, mode)
        record["relevant"] = sorted(relevance)
        records.append(record)

    metrics = {
        mode: {name: mean(values) for name, values in scores.items()}
        for mode, scores in per_mode.items()
    }
    yield EvalReport(
        suite="retrieval",
        metrics=metrics,
        config={
            "modes": list(modes),
            "k": k,
            "rrf_k": home.config.rrf_k,
            "candidates": home.config.candidates,
            "chunk_tokens": home.config.chunk_tokens,
            "chunk_overlap": home.config.chunk_overlap,
        },
        model=home.config.embedding_model,
        dataset=str(corpus),
        n=len(judged),
        started=started_at,
        seconds=time.perf_counter() - started,
        records=records,
    )
