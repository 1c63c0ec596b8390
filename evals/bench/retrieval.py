"""Retrieval latency at 10k and 100k chunks, and SciFact quality, per store backend.

Query latency = query embedding (the real bundled embedder) + search. The FAISS part compares
exact search with approximate (HNSW) over real SciFact chunk vectors from an ingested home when one
is given (`--home`, e.g. the home of `assistant eval retrieval` on SciFact), padded with synthetic
unit vectors up to the target size; recall@10 of the approximate index is measured against exact
search with real SciFact queries.

`--backends sqlite,postgres` also compares the stores side by side, through the same `Retriever`
the assistant uses: SQLite + FAISS (exact) against PostgreSQL (BM25 in SQL + pgvector HNSW).
Quality is `assistant eval retrieval` on SciFact (nDCG@10 per mode); the corpus is embedded once,
into the SQLite home, and its rows and vectors are copied into PostgreSQL, so both backends search
the very same vectors. Latency fills one store per backend and size with the SciFact chunks, then
their texts again with synthetic vectors, and times every mode on the same queries, interleaved.
Without `--database-url` a PostgreSQL server is started for the run (tests/postgres.py).

    python evals/bench/retrieval.py --home /path/to/scifact-home --backends sqlite,postgres

Prints tables and writes JSON (default evals/bench/results/retrieval.json).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import common
import faiss
import numpy as np
from stores import (
    copy_store,
    drop_database,
    filled_store,
    fresh_database,
    open_vectors,
    postgres_server,
    stored_chunks,
)

from assistant.config import Config
from assistant.embed.embedder import Embedder
from assistant.evals.datasets import load_beir_queries
from assistant.evals.report import EvalReport
from assistant.evals.retrieval import run_retrieval_eval
from assistant.index.home import Home
from assistant.index.retrieval import MODES, Retriever
from assistant.index.store import ChunkRow, Store

BACKENDS = ("sqlite", "postgres")
SCIFACT = Path("../shared/data/scifact")
WARM_UP_QUERIES = 20  # searched once per backend and mode before timing


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def base_vectors(real: np.ndarray, size: int, dimension: int, seed: int) -> np.ndarray:
    """The first `size` real vectors, padded with synthetic unit vectors."""
    real = real[:size] if len(real) else np.zeros((0, dimension), dtype=np.float32)
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


# --- backends side by side -----------------------------------------------------------------------


def evaluate(home: Home, corpus: Path, queries: Path, qrels: Path) -> EvalReport:
    for event in run_retrieval_eval(home, corpus, queries, qrels):
        if isinstance(event, EvalReport):
            return event
    raise RuntimeError("the retrieval eval ended without a report")


def quality(
    backends: Sequence[str], sqlite_home: Home, server_url: str | None, folder: Path, data: Path
) -> dict[str, dict[str, Any]]:
    """SciFact nDCG@10 (and the eval's other metrics) per mode and backend; PostgreSQL gets a
    copy of the SQLite home's rows and vectors instead of embedding the corpus again."""
    corpus, queries, qrels = (
        data / "corpus.jsonl",
        data / "queries_train.jsonl",
        data / "qrels" / "train.tsv",
    )
    results: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    print("SciFact on sqlite: ingesting (embeds the corpus unless --home has it) and searching")
    report = evaluate(sqlite_home, corpus, queries, qrels)
    results["sqlite"] = {"metrics": report.metrics, "n": report.n, "seconds": report.seconds}
    if "postgres" in backends and server_url is not None:
        url = fresh_database(server_url, "bench_scifact")
        home = sqlite_home.with_config(
            sqlite_home.config.replace(home=folder / "postgres-home", database_url=url)
        )
        try:
            copied = copy_store(sqlite_home.store, home.store)
            print(f"SciFact on postgres: copied {copied} chunks, searching")
            report = evaluate(home, corpus, queries, qrels)
            results["postgres"] = {
                "metrics": report.metrics,
                "n": report.n,
                "seconds": report.seconds,
            }
        finally:
            home.close()
            drop_database(server_url, "bench_scifact")
    print(f"quality: {time.perf_counter() - started:.0f} s")
    return results


class KnownQueries:
    """Gives the `Retriever` query vectors embedded beforehand: the embedding is timed once per
    query, apart, and added to each backend's search time."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        self.vectors = dict(zip(texts, vectors, strict=True))
        self.dimension = int(vectors.shape[1])

    def embed_query(self, text: str) -> np.ndarray:
        return self.vectors[text]


def backend_latency(
    backends: Sequence[str],
    size: int,
    rows: Sequence[ChunkRow],
    matrix: np.ndarray,
    server_url: str | None,
    folder: Path,
    texts: Sequence[str],
    query_vectors: np.ndarray,
    embed_ms: Sequence[float],
    config: Config,
) -> list[dict[str, Any]]:
    """Per backend and mode: retrieval (top 10, passages fetched) and query (+ embedding) times
    at `size` chunks. Queries are interleaved across backends and modes so load drift hits all
    alike; a few unrecorded rounds first warm the caches."""
    stores: dict[str, Store] = {}
    retrievers: dict[str, Retriever] = {}
    extra: dict[str, dict[str, Any]] = {}
    known = KnownQueries(texts, query_vectors)
    try:
        for backend in backends:
            if backend == "postgres":
                if server_url is None:
                    continue
                url = fresh_database(server_url, f"bench_{size}")
            else:
                url = f"sqlite:///{folder / f'sqlite-{size}.db'}"
            started = time.perf_counter()
            store = filled_store(url, size, rows, matrix, seed=size)
            stores[backend] = store
            filled = time.perf_counter() - started
            vectors = open_vectors(backend, store, folder, matrix.shape[1])
            index_s = time.perf_counter() - started - filled
            extra[backend] = {"fill_s": round(filled, 1), "index_s": round(index_s, 1)}
            print(f"{size} chunks, {backend}: filled in {filled:.0f} s, index in {index_s:.0f} s")
            retrievers[backend] = Retriever(
                store,
                vectors,
                known,  # type: ignore[arg-type]
                candidates=config.candidates,
                rrf_k=config.rrf_k,
            )
        times: dict[tuple[str, str], list[float]] = {
            (backend, mode): [] for backend in retrievers for mode in MODES
        }
        warm_up = list(texts[:WARM_UP_QUERIES])
        for round_number, query in enumerate([*warm_up, *texts]):
            for backend, retriever in retrievers.items():
                for mode in MODES:
                    started = time.perf_counter()
                    retriever.search(query, 10, mode)
                    if round_number >= len(warm_up):
                        times[backend, mode].append((time.perf_counter() - started) * 1000)
    finally:
        for backend, store in stores.items():
            store.close()
            if backend == "postgres" and server_url is not None:
                drop_database(server_url, f"bench_{size}")
    rows_out = []
    for (backend, mode), latencies in times.items():
        embedding = embed_ms if mode != "lexical" else [0.0] * len(latencies)
        total = [e + s for e, s in zip(embedding, latencies, strict=True)]
        rows_out.append(
            {
                "chunks": size,
                "backend": backend,
                "mode": mode,
                "retrieval_p50_ms": percentile(latencies, 50),
                "retrieval_p95_ms": percentile(latencies, 95),
                "query_p50_ms": percentile(total, 50),
                "query_p95_ms": percentile(total, 95),
                **extra[backend],
            }
        )
    return rows_out


def faiss_rows(
    real: np.ndarray, sizes: Sequence[int], queries: np.ndarray, embed_ms: Sequence[float]
) -> list[dict[str, Any]]:
    """Exact FAISS search on one thread and on all cores, and HNSW, over the same vectors."""
    dimension = queries.shape[1]
    rows = []
    for size in sizes:
        base = base_vectors(real, size, dimension, seed=0)
        exact = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        exact.add_with_ids(base, np.arange(size, dtype=np.int64))
        hnsw = faiss.IndexHNSWFlat(dimension, 32, faiss.METRIC_INNER_PRODUCT)
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
    return rows


def print_faiss(rows: Sequence[dict[str, Any]], sizes: Sequence[int]) -> None:
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
    for size in sizes:
        exact_row, exact_all_row, hnsw_row = [row for row in rows if row["chunks"] == size]
        ratio = exact_row["search_p50_ms"] / max(hnsw_row["search_p50_ms"], 1e-9)
        threads = exact_all_row["search_p50_ms"] / max(exact_row["search_p50_ms"], 1e-9)
        print(
            f"{size} chunks: exact search on one thread is {threads:.1f}x faster than on all "
            f"cores; HNSW is {ratio:.1f}x faster than exact (one thread) at p50"
        )


def print_backends(quality_results: dict[str, Any], rows: Sequence[dict[str, Any]]) -> None:
    if quality_results:
        print(f"{'SciFact nDCG@10':<16}" + "".join(f"{mode:>10}" for mode in MODES))
        for backend, result in quality_results.items():
            scores = "".join(f"{result['metrics'][mode]['ndcg@10']:>10.4f}" for mode in MODES)
            print(f"{backend:<16}{scores}")
        if len(quality_results) == 2:
            differences = {
                mode: quality_results["postgres"]["metrics"][mode]["ndcg@10"]
                - quality_results["sqlite"]["metrics"][mode]["ndcg@10"]
                for mode in MODES
            }
            print(
                "postgres - sqlite: " + ", ".join(f"{m} {d:+.4f}" for m, d in differences.items())
            )
    if not rows:
        return
    header = ("chunks", "backend", "mode", "retrieval p50", "p95", "query p50", "p95")
    print("{:>8} {:<9} {:<8} {:>13} {:>8} {:>10} {:>8}".format(*header))
    for row in rows:
        print(
            f"{row['chunks']:>8} {row['backend']:<9} {row['mode']:<8} "
            f"{row['retrieval_p50_ms']:>13.2f} {row['retrieval_p95_ms']:>8.2f} "
            f"{row['query_p50_ms']:>10.2f} {row['query_p95_ms']:>8.2f}"
        )
    for row in rows:
        if row["backend"] != "postgres":
            continue
        base = next(
            other
            for other in rows
            if other["backend"] == "sqlite"
            and other["chunks"] == row["chunks"]
            and other["mode"] == row["mode"]
        )
        print(
            f"{row['chunks']} chunks, {row['mode']}: postgres/sqlite retrieval p50 "
            f"{row['retrieval_p50_ms'] / max(base['retrieval_p50_ms'], 1e-9):.2f}x, "
            f"query p50 {row['query_p50_ms'] / max(base['query_p50_ms'], 1e-9):.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="a home with SciFact ingested (real vectors); ingested into when not yet",
    )
    parser.add_argument("--data", type=Path, default=SCIFACT, help="the SciFact folder")
    parser.add_argument("--queries", type=Path, default=SCIFACT / "queries_train.jsonl")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--n-queries", type=int, default=200)
    parser.add_argument(
        "--backends", default="sqlite", help="comma-separated: sqlite (+ FAISS), postgres"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL database whose user may create databases (default: start a server)",
    )
    parser.add_argument("--no-quality", action="store_true", help="skip SciFact nDCG per mode")
    parser.add_argument(
        "--no-latency", action="store_true", help="skip the latency runs (FAISS and backends)"
    )
    parser.add_argument("--out", type=Path, default=Path("evals/bench/results/retrieval.json"))
    arguments = parser.parse_args()
    backends = [name.strip() for name in arguments.backends.split(",") if name.strip()]
    if not backends or set(backends) - set(BACKENDS):
        parser.error(f"--backends takes {', '.join(BACKENDS)}, not {arguments.backends!r}")

    config = Config.load()
    machine = common.machine_info()
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

    embedding = {
        name: {"p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95)}
        for name, values in timings.items()
    }
    for name, row in embedding.items():
        print(f"query embedding, {name}: p50 {row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f} ms")

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as temporary:
        folder = Path(temporary)
        home = Home(
            Config.load(home=arguments.home or folder / "scifact-home", database_url=""),
            default_embedder,
        )
        server = postgres_server(arguments.database_url) if "postgres" in backends else None
        server_url = server.__enter__() if server is not None else None
        try:
            quality_results: dict[str, Any] = {}
            if arguments.no_quality or not (arguments.data / "corpus.jsonl").exists():
                print(f"no SciFact quality ({arguments.data} absent or --no-quality)")
            else:
                quality_results = quality(backends, home, server_url, folder, arguments.data)
            real_rows: list[ChunkRow] = []
            real = np.zeros((0, embedder.dimension), dtype=np.float32)
            if (home.path / "assistant.db").exists():
                real_rows, real = stored_chunks(home.store)
            home.close()
            sizes = [] if arguments.no_latency else arguments.sizes
            rows: list[dict[str, Any]] = []
            if sizes:
                print(f"FAISS variants over {min(len(real), max(sizes))} real vectors")
                rows = faiss_rows(real, sizes, queries, embed_ms)
            backend_rows: list[dict[str, Any]] = []
            if sizes and (len(backends) > 1 or backends != ["sqlite"]):
                if not real_rows:
                    print("no ingested chunks to fill the backends' stores with: no latency")
                for size in sizes if real_rows else []:
                    backend_rows += backend_latency(
                        backends,
                        size,
                        real_rows,
                        real,
                        server_url,
                        folder,
                        texts,
                        queries,
                        embed_ms,
                        config,
                    )
        finally:
            if server is not None:
                server.__exit__(None, None, None)

    print_faiss(rows, sizes)
    print_backends(quality_results, backend_rows)
    common.write_results(
        arguments.out,
        {
            "benchmark": "retrieval",
            "machine": machine,
            "faiss": faiss.__version__,
            "queries": len(texts),
            "real_vectors": len(real),
            "real_vectors_from": str(arguments.home) if arguments.home else "SciFact, ingested",
            "backends": backends,
            "query_embedding": embedding,
            "load_average": {"start": load_before, "end": os.getloadavg()},
            "rows": rows,
            "quality": quality_results,
            "backend_rows": backend_rows,
        },
    )
    print(f"wrote {arguments.out}")


if __name__ == "__main__":
    main()
