"""Retrieval latency at 10k and 100k chunks: exact FAISS search vs approximate (HNSW), side by side.

Query latency = query embedding (the real bundled embedder) + vector search. The search part runs
over real SciFact chunk vectors from an ingested home when one is given (`--home`, e.g. the home
of `assistant eval retrieval` on SciFact), padded with synthetic unit vectors up to the target
size. Recall@10 of the approximate index is measured against exact search with real SciFact
queries.

    python evals/bench/retrieval.py --home /path/to/scifact-home \
        --queries ../shared/data/scifact/queries_train.jsonl

Prints a table and writes JSON (default evals/bench/results/retrieval.json).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import common
import faiss
import numpy as np

from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.evals.datasets import load_beir_queries
from assistant.index.store import Store


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def base_vectors(home: Path | None, size: int, dimension: int, seed: int) -> np.ndarray:
    real = np.zeros((0, dimension), dtype=np.float32)
    if home is not None and (home / "assistant.db").exists():
        store = Store(f"sqlite:///{home / 'assistant.db'}")
        ids = store.chunk_ids()[:size]
        _, real = store.embeddings(ids.tolist())
    rng = np.random.default_rng(seed)
    synthetic = rng.standard_normal((max(0, size - len(real)), dimension)).astype(np.float32)
    synthetic /= np.linalg.norm(synthetic, axis=1, keepdims=True)
    return np.ascontiguousarray(np.vstack([real, synthetic])[:size], dtype=np.float32)


def timed_search(
    index: faiss.Index, queries: np.ndarray, k: int, *, threads: int = 1
) -> tuple[list[float], np.ndarray]:
    """Per-query latencies; one OpenMP thread is what `VectorIndex.search` uses."""
    latencies = []
    found = []
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        for query in queries:
            started = time.perf_counter()
            _, ids = index.search(query.reshape(1, -1), k)
            latencies.append((time.perf_counter() - started) * 1000)
            found.append(ids[0])
    finally:
        faiss.omp_set_num_threads(previous)
    return latencies, np.vstack(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, default=None, help="an ingested home (real vectors)")
    parser.add_argument(
        "--queries", type=Path, default=Path("../shared/data/scifact/queries_train.jsonl")
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--n-queries", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("evals/bench/results/retrieval.json"))
    arguments = parser.parse_args()

    config = Config.load()
    if arguments.queries.exists():
        texts = list(load_beir_queries(arguments.queries).values())[: arguments.n_queries]
    else:
        print(f"{arguments.queries} is absent: using synthetic query texts")
        texts = [f"query number {i} about retrieval latency" for i in range(arguments.n_queries)]
    # Query embedding, three ways, interleaved query by query so load drift hits all alike:
    # torch on all cores (`embed([text])`), torch on one thread (`embed_query`), and the default
    # backend's `embed_query` (what `assistant ask` runs).
    torch_embedder = Embedder(config.embedding_model, "cpu", backend="torch")
    default_embedder = Embedder.from_config(config.replace(device="cpu"))
    variants = {
        "torch, all cores": lambda text: torch_embedder.embed([text])[0],
        "torch, one thread": torch_embedder.embed_query,
        f"default ({default_embedder.backend})": default_embedder.embed_query,
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    vectors = []
    for text in texts:
        for name, embed in variants.items():
            started = time.perf_counter()
            vector = embed(text)
            timings[name].append((time.perf_counter() - started) * 1000)
        vectors.append(vector)  # the default embedder's
    embed_ms = timings[f"default ({default_embedder.backend})"]
    embedder = default_embedder
    queries = np.vstack(vectors).astype(np.float32)

    rows = []
    for size in arguments.sizes:
        base = base_vectors(arguments.home, size, embedder.dimension, seed=0)
        exact = faiss.IndexIDMap2(faiss.IndexFlatIP(embedder.dimension))
        exact.add_with_ids(base, np.arange(size, dtype=np.int64))
        hnsw = faiss.IndexHNSWFlat(embedder.dimension, 32, faiss.METRIC_INNER_PRODUCT)
        started = time.perf_counter()
        hnsw.add(base)
        build_s = time.perf_counter() - started
        hnsw.hnsw.efSearch = 64
        exact_ms, exact_ids = timed_search(exact, queries, 10)
        exact_all_ms, _ = timed_search(exact, queries, 10, threads=os.cpu_count() or 1)
        hnsw_ms, hnsw_ids = timed_search(hnsw, queries, 10)
        recall = float(
            np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact_ids, hnsw_ids, strict=True)])
        )
        for name, latencies, extra in (
            ("exact, one thread", exact_ms, {}),
            ("exact, all cores", exact_all_ms, {}),
            ("HNSW M=32 ef=64", hnsw_ms, {"recall@10_vs_exact": recall, "build_s": build_s}),
        ):
            total = [e + s for e, s in zip(embed_ms, latencies, strict=True)]
            rows.append(
                {
                    "chunks": size,
                    "index": name,
                    "search_p50_ms": percentile(latencies, 50),
                    "search_p95_ms": percentile(latencies, 95),
                    "query_p50_ms": percentile(total, 50),
                    "query_p95_ms": percentile(total, 95),
                    **extra,
                }
            )
    embedding = {
        name: {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95)}
        for name, values in timings.items()
    }
    for name, row in embedding.items():
        print(f"query embedding, {name}: p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms")
    header = ("chunks", "index", "search p50", "p95", "query p50", "p95", "recall@10")
    print("{:>8} {:<22} {:>10} {:>8} {:>10} {:>8} {:>9}".format(*header))
    for row in rows:
        recall = row.get("recall@10_vs_exact")
        recall_text = f"{recall:.3f}" if isinstance(recall, float) else "1 (ref)"
        print(
            f"{row['chunks']:>8} {row['index']:<22} {row['search_p50_ms']:>10.2f} "
            f"{row['search_p95_ms']:>8.2f} {row['query_p50_ms']:>10.2f} "
            f"{row['query_p95_ms']:>8.2f} {recall_text:>9}"
        )
    for size in arguments.sizes:
        exact_row, exact_all_row, hnsw_row = [row for row in rows if row["chunks"] == size]
        ratio = exact_row["search_p50_ms"] / max(hnsw_row["search_p50_ms"], 1e-9)
        threads = exact_all_row["search_p50_ms"] / max(exact_row["search_p50_ms"], 1e-9)
        print(
            f"{size} chunks: exact search on one thread is {threads:.1f}x faster than on all "
            f"cores; HNSW is {ratio:.1f}x faster than exact (one thread) at p50"
        )
    common.write_results(
        arguments.out,
        {
            "benchmark": "retrieval",
            "machine": common.machine_info(),
            "faiss": faiss.__version__,
            "queries": len(texts),
            "real_vectors_from": str(arguments.home) if arguments.home else None,
            "query_embedding": embedding,
            "load_average": os.getloadavg(),
            "rows": rows,
        },
    )
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
