#!/usr/bin/env python3
"""Kill `assistant ingest` at random moments, resume it, and check the home after every kill.

A folder of the sample corpus copied `--copies` times, plus one BEIR JSONL file of
`--jsonl-rows` SciFact abstracts when ../shared/data holds them (a file big enough to be committed
in several parts), is ingested by the real command line in a subprocess, which is killed (SIGKILL:
no clean-up runs) at a random moment `--kills` times; each run resumes the one before. After
every kill the home is checked:

- the database: no chunk without its document, every document's chunk count right, the FTS5
  index in step with the chunks, one document per real file;
- the vector index on disk: no id twice; how many committed chunks it lacks, and how many it
  holds that the database no longer has (both are repaired when the index is next opened, which
  is checked too: after opening, the index holds exactly the database's chunks).

A last run then finishes the ingest, and its home is compared with an uninterrupted ingest of the
same folder: the same documents, the same chunks (text, lines, headings), and vectors within
bfloat16 noise of each other (cosine). The numbers are printed, and written as JSON with --out.

    python scripts/kill_trial.py [--kills 20] [--copies 3] [--jsonl-rows 300] [--seed 0]
                                 [--latest 15] [--out trial.json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLE = REPOSITORY / "corpora" / "sample"
SCIFACT = REPOSITORY.parent / "shared" / "data" / "scifact" / "corpus.jsonl"


def store_problems(home: Path) -> tuple[list[str], dict[str, int]]:
    """What is wrong with the database and the index file of `home` (read only, nothing
    repaired), and counts: documents, chunks, unfinished documents, index ids missing/stale."""
    problems: list[str] = []
    database = sqlite3.connect(home / "assistant.db")
    try:
        orphans = _one(
            database,
            "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)",
        )
        miscounted = _one(
            database,
            "SELECT count(*) FROM documents d WHERE chunk_count != "
            "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id)",
        )
        if orphans:
            problems.append(f"{orphans} chunks without their document")
        if miscounted:
            problems.append(f"{miscounted} documents whose chunk count is wrong")
        try:  # rank 1: compare the FTS5 index with the chunks table itself
            database.execute(
                "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1)"
            )
        except sqlite3.DatabaseError as error:
            problems.append(f"the FTS5 index is out of step with the chunks: {error}")
        paths = [row[0] for row in database.execute("SELECT DISTINCT path FROM documents")]
        if len({os.path.realpath(path) for path in paths}) != len(paths):
            problems.append("one real file stored under two paths")
        chunk_ids = np.asarray(
            [row[0] for row in database.execute("SELECT id FROM chunks")], dtype=np.int64
        )
        counts = {
            "documents": _one(database, "SELECT count(*) FROM documents"),
            "chunks": len(chunk_ids),
            "unfinished_documents": _one(
                database, "SELECT count(*) FROM documents WHERE file_hash = ''"
            ),
        }
    finally:
        database.close()
    index_ids = np.zeros(0, dtype=np.int64)
    if (home / "index.faiss").exists():
        index = faiss.read_index(str(home / "index.faiss"))
        if index.ntotal:
            index_ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    if len(np.unique(index_ids)) != len(index_ids):
        problems.append(f"{len(index_ids) - len(np.unique(index_ids))} ids twice in the index")
    counts["index_missing"] = len(np.setdiff1d(chunk_ids, index_ids))
    counts["index_stale"] = len(np.setdiff1d(index_ids, chunk_ids))
    return problems, counts


def _one(database: sqlite3.Connection, query: str) -> int:
    return int(database.execute(query).fetchone()[0])


def reopened_index_problems(home: Path) -> list[str]:
    """Open the home as every command does (the index is brought in step with the database, in
    memory) and say whether the index then holds exactly the database's chunks."""
    from assistant.config import Config
    from assistant.index.home import Home

    opened = Home(Config.load(environ={}, home=home))
    if opened.store.counts()["chunks"] == 0:
        opened.store.close()
        return []  # the embedding model may not even be recorded yet
    try:
        ids = opened.index.ids()
        chunk_ids = opened.store.chunk_ids()
    finally:
        opened.store.close()
    if len(ids) != len(np.unique(ids)) or set(ids.tolist()) != set(chunk_ids.tolist()):
        return [f"after opening, the index holds {len(ids)} ids for {len(chunk_ids)} chunks"]
    return []


def content(home: Path) -> dict[str, Any]:
    """Documents and chunks as comparable values, and each chunk's vector by (key, ordinal)."""
    database = sqlite3.connect(home / "assistant.db")
    try:
        documents = sorted(
            database.execute(
                "SELECT key, path, format, title, content_hash, file_hash, chunk_count "
                "FROM documents"
            )
        )
        rows = database.execute(
            "SELECT d.key, c.ordinal, c.text, c.start_line, c.end_line, c.page, c.heading, "
            "c.embedding FROM chunks c JOIN documents d ON d.id = c.document_id"
        ).fetchall()
    finally:
        database.close()
    chunks = sorted(row[:7] for row in rows)
    vectors = {(row[0], row[1]): np.frombuffer(row[7], dtype=np.float32) for row in rows}
    return {"documents": documents, "chunks": chunks, "vectors": vectors}


def ingest_command(folder: Path, home: Path, cache: Path) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "ASSISTANT_HOME": str(home),
        "ASSISTANT_CACHE_DIR": str(cache),
        "TOKENIZERS_PARALLELISM": "false",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "assistant", "ingest", str(folder), "--json"],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(folder: Path, home: Path, cache: Path) -> dict[str, Any]:
    process = ingest_command(folder, home, cache)
    output, errors = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"ingest failed ({process.returncode}): {errors.decode()[-2000:]}")
    summary: dict[str, Any] = json.loads(output)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--copies", type=int, default=3, help="copies of corpora/sample")
    parser.add_argument("--jsonl-rows", type=int, default=300, help="SciFact rows; 0: none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latest", type=float, default=15.0, help="kill within this many s")
    parser.add_argument("--out", type=Path, default=None)
    options = parser.parse_args()
    chooser = random.Random(options.seed)

    work = Path(tempfile.mkdtemp(prefix="kill-trial-")).resolve()
    try:
        folder, cache = work / "corpus", work / "models"
        for copy in range(options.copies):
            shutil.copytree(SAMPLE, folder / f"copy{copy}")
        if options.jsonl_rows and SCIFACT.exists():
            with SCIFACT.open(encoding="utf-8") as rows:
                head = [row for _, row in zip(range(options.jsonl_rows), rows, strict=False)]
            (folder / "scifact.jsonl").write_text("".join(head), encoding="utf-8")
        elif options.jsonl_rows:
            print(f"no {SCIFACT}: the trial runs without a JSONL file", flush=True)
        started = time.monotonic()
        reference = finish(folder, work / "reference", cache)  # also exports the embedder once
        print(
            f"uninterrupted: {reference['added']} files, {reference['chunks_added']} chunks in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )

        home = work / "home"
        cycles: list[dict[str, Any]] = []
        failures: list[str] = []
        for number in range(1, options.kills + 1):
            moment = chooser.uniform(0.3, options.latest)
            process = ingest_command(folder, home, cache)
            time.sleep(moment)
            finished = process.poll() is not None
            if not finished:
                process.send_signal(signal.SIGKILL)
            process.communicate()
            cycle: dict[str, Any] = {"kill": number, "after_seconds": round(moment, 2)}
            if finished:
                cycle["finished_first"] = True
            if (home / "assistant.db").exists():
                problems, counts = store_problems(home)
                problems += reopened_index_problems(home)
                cycle.update(counts, problems=problems)
                failures += [f"kill {number}: {problem}" for problem in problems]
            cycles.append(cycle)
            print(json.dumps(cycle), flush=True)

        last = finish(folder, home, cache)
        problems, counts = store_problems(home)
        if counts["index_missing"] or counts["index_stale"]:
            problems.append(f"the index saved by the last run is out of step: {counts}")
        if counts["unfinished_documents"]:
            problems.append(f"{counts['unfinished_documents']} documents left unfinished")
        failures += [f"after the last run: {problem}" for problem in problems]

        resumed, expected = content(home), content(work / "reference")
        if resumed["documents"] != expected["documents"]:
            failures.append("the documents differ from an uninterrupted ingest")
        if resumed["chunks"] != expected["chunks"]:
            failures.append("the chunks differ from an uninterrupted ingest")
        cosines = [
            float(np.dot(vector, resumed["vectors"][key]))
            for key, vector in expected["vectors"].items()
            if key in resumed["vectors"]
        ]
        lowest = min(cosines) if cosines else 0.0
        if lowest < 0.99:
            failures.append(
                f"a chunk's vector differs from the uninterrupted one (cosine {lowest})"
            )
        result = {
            "kills": options.kills,
            "copies": options.copies,
            "jsonl_rows": options.jsonl_rows if (folder / "scifact.jsonl").exists() else 0,
            "seed": options.seed,
            "killed_while_running": sum(1 for cycle in cycles if not cycle.get("finished_first")),
            "documents_committed_before_each_kill": [cycle.get("documents", 0) for cycle in cycles],
            "kills_that_left_a_file_unfinished": sum(
                1 for cycle in cycles if cycle.get("unfinished_documents")
            ),
            "last_run": {key: last[key] for key in ("added", "updated", "unchanged", "removed")},
            "documents": counts["documents"],
            "chunks": counts["chunks"],
            "lowest_vector_cosine": round(lowest, 6),
            "failures": failures,
        }
        print(json.dumps(result, indent=2))
        if options.out is not None:
            options.out.write_text(json.dumps({**result, "cycles": cycles}, indent=2) + "\n")
        if failures:
            raise SystemExit(1)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
